//! Slow clients cannot hold the in-flight budget for ever, and no credential can starve the
//! others (issue 13): the minimum body rate, the bounded wait for budget (SlowDown), the
//! per-credential share, per-credential rate limits, and the idle timeout of XML bodies.

use std::time::{Duration, Instant};

use hansa_conformance::{
    create_bucket, get, md5_b64, put, raw, s3_err, Key, Options, TestGateway, ADMIN, LIMITED,
    LIMITED_BUCKET,
};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

/// A second full-access key, so that two clients of different credentials can trickle.
const OTHER: Key = Key {
    access_key_id: "HANSATESTOTHER",
    secret_access_key: "other-secret-0123456789abcdefghijklmnopq",
};

const SLOW_DOWN_MESSAGE: &str = "Please reduce your request rate.";
const TIMEOUT_MESSAGE: &str =
    "Your socket connection to the server was not read from or written to within the timeout period.";

fn other_credential() -> String {
    format!(
        "[[credential]]\naccess_key_id = \"{}\"\nsecret_access_key = \"{}\"\n",
        OTHER.access_key_id, OTHER.secret_access_key
    )
}

/// The issue's gateway: a 10 MiB budget (two 5 MiB buffers).
async fn gateway(limits: &str, extra: &str) -> TestGateway {
    TestGateway::start_with(Options {
        inflight_bytes: Some(10 << 20),
        limits_toml: limits.to_string(),
        extra_toml: format!("{}\n{extra}", other_credential()),
        ..Default::default()
    })
    .await
}

/// Sends one byte every `every` on `stream` until the gateway answers; the answer and how
/// long it took.
async fn trickle_until_answered(
    mut stream: TcpStream,
    every: Duration,
    limit: Duration,
) -> (raw::Response, Duration) {
    let started = Instant::now();
    loop {
        assert!(started.elapsed() < limit, "no answer within {limit:?}");
        if tokio::time::timeout(every, stream.readable()).await.is_ok() {
            let response = raw::read_response(&mut stream, Duration::from_secs(5))
                .await
                .expect("a response");
            return (response, started.elapsed());
        }
        // The gateway may have answered and closed meanwhile.
        let _ = stream.write_all(b"x").await;
    }
}

/// Waits for the answer to a request whose body is complete (or will never be).
async fn answer(mut stream: TcpStream, limit: Duration) -> (raw::Response, Duration) {
    let started = Instant::now();
    let response = raw::read_response(&mut stream, limit)
        .await
        .expect("a response");
    (response, started.elapsed())
}

fn assert_error(response: &raw::Response, status: u16, code: &str, message: &str) {
    assert_eq!(
        (response.status, response.code().as_deref()),
        (status, Some(code)),
        "{}",
        response.text()
    );
    let text = response.text();
    assert!(
        text.contains(&format!("<Message>{message}</Message>")),
        "{text}"
    );
    assert!(text.contains("<RequestId>"), "{text}");
}

async fn wait_for_budget_released(gw: &TestGateway) {
    wait_until("budget still held", || {
        gw.store().budget.reserved_bytes() == 0
    })
    .await;
}

/// Polls `done` for up to 5 s; fails with `what` if it never holds.
async fn wait_until(what: &str, done: impl Fn() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !done() {
        assert!(Instant::now() < deadline, "{what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The issue's case: with a 10 MiB budget, two clients (two credentials) sending one byte at a
/// time no longer block a 5-byte PUT, nor one larger than a buffer; they are cut with
/// RequestTimeout once a window behind the minimum rate, and the versions they would have
/// overwritten are intact.
#[tokio::test]
async fn tricklers_neither_block_others_nor_commit() {
    let gw = gateway(
        "min_body_bytes_per_sec = 1024\nmin_body_rate_window_secs = 3\nbudget_wait_ms = 1000\n",
        "",
    )
    .await;
    let admin = gw.client();
    create_bucket(&admin, "slow").await;
    create_bucket(&admin, LIMITED_BUCKET).await;
    put(&admin, "slow", "t1", b"previous one").await;
    put(&admin, "slow", "t2", b"previous two").await;

    let big = vec![b'z'; 10 << 20];
    let t1 = gw.start_put_as(ADMIN, "slow", "t1", &big, 1).await;
    let t2 = gw.start_put_as(OTHER, "slow", "t2", &big, 1).await;
    let tricklers = [t1, t2].map(|s| {
        tokio::spawn(trickle_until_answered(
            s,
            Duration::from_secs(1),
            Duration::from_secs(20),
        ))
    });
    tokio::time::sleep(Duration::from_millis(300)).await;

    let limited = gw.client_for(LIMITED);
    let started = Instant::now();
    put(&limited, LIMITED_BUCKET, "small", b"hello").await;
    let small = started.elapsed();
    assert!(small < Duration::from_secs(2), "5-byte PUT took {small:?}");
    let six = vec![b'6'; 6 << 20];
    let started = Instant::now();
    put(&limited, LIMITED_BUCKET, "six", &six).await;
    let larger = started.elapsed();
    assert!(larger < Duration::from_secs(5), "6 MiB PUT took {larger:?}");
    eprintln!("with two tricklers: 5-byte PUT {small:?}, 6 MiB PUT {larger:?}");

    for t in tricklers {
        let (response, took) = t.await.expect("trickler");
        assert_error(&response, 400, "RequestTimeout", TIMEOUT_MESSAGE);
        assert!(
            took >= Duration::from_secs(2) && took < Duration::from_secs(8),
            "cut after {took:?}"
        );
        eprintln!("trickler cut after {took:?}");
    }
    assert_eq!(get(&admin, "slow", "t1").await, b"previous one");
    assert_eq!(get(&admin, "slow", "t2").await, b"previous two");
    assert_eq!(get(&limited, LIMITED_BUCKET, "six").await, six);
    wait_for_budget_released(&gw).await;
    gw.shutdown().await;
}

/// Two uploads that have sent more than their first bytes hold a whole buffer each; with the
/// budget full, the next request waits `budget_wait_ms` and gets 503 SlowDown, then succeeds
/// once the budget is free again.
#[tokio::test]
async fn a_full_budget_answers_slow_down_after_the_bounded_wait() {
    let gw = gateway(
        "min_body_bytes_per_sec = 1024\nmin_body_rate_window_secs = 30\nbudget_wait_ms = 500\n\
         max_budget_share_per_credential = 1.0\n",
        "",
    )
    .await;
    let admin = gw.client();
    create_bucket(&admin, "full").await;
    let body = vec![b'h'; 6 << 20];
    let mut holders = Vec::new();
    for key in ["h1", "h2"] {
        holders.push(gw.start_put_as(ADMIN, "full", key, &body, 200 << 10).await);
    }
    wait_until("the holders did not fill the budget", || {
        gw.store().budget.reserved_bytes() >= 10 << 20
    })
    .await;
    let small = gw.start_put_as(OTHER, "full", "small", b"hello", 5).await;
    let (response, took) = answer(small, Duration::from_secs(10)).await;
    assert_error(&response, 503, "SlowDown", SLOW_DOWN_MESSAGE);
    assert!(
        took >= Duration::from_millis(400) && took < Duration::from_secs(3),
        "answered after {took:?}"
    );
    eprintln!("SlowDown after {took:?} with the budget full");
    drop(holders);
    wait_for_budget_released(&gw).await;
    put(&gw.client_for(OTHER), "full", "small", b"hello").await;
    gw.shutdown().await;
}

/// One credential holding its share (half the budget) waits, then gets SlowDown; another
/// credential is served at once from the other half.
#[tokio::test]
async fn one_credential_cannot_take_more_than_its_share() {
    let gw = gateway(
        "min_body_bytes_per_sec = 1024\nmin_body_rate_window_secs = 30\nbudget_wait_ms = 500\n\
         max_budget_share_per_credential = 0.5\n",
        "",
    )
    .await;
    let admin = gw.client();
    create_bucket(&admin, "share").await;
    create_bucket(&admin, LIMITED_BUCKET).await;
    let body = vec![b's'; 6 << 20];
    let holder = gw
        .start_put_as(ADMIN, "share", "held", &body, 200 << 10)
        .await;
    wait_until("the holder did not take its share", || {
        gw.store().budget.tenant_bytes(ADMIN.access_key_id) >= 5 << 20
    })
    .await;
    // Its share is full: a second write of the same key id waits, then is told to slow down.
    let second = gw.start_put_as(ADMIN, "share", "more", b"hello", 5).await;
    let (response, took) = answer(second, Duration::from_secs(10)).await;
    assert_error(&response, 503, "SlowDown", SLOW_DOWN_MESSAGE);
    assert!(took >= Duration::from_millis(400), "{took:?}");
    // Another credential gets the other half at once, even a whole buffer of it.
    let started = Instant::now();
    put(
        &gw.client_for(LIMITED),
        LIMITED_BUCKET,
        "k",
        &vec![b'l'; 6 << 20],
    )
    .await;
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(gw.store().budget.tenant_bytes(ADMIN.access_key_id) <= 5 << 20);
    drop(holder);
    wait_for_budget_released(&gw).await;
    gw.shutdown().await;
}

/// A credential over its requests/s gets SlowDown and recovers once its bucket refills; one
/// over its bytes/s is slowed down, not failed; other credentials are not limited.
#[tokio::test]
async fn per_credential_rate_limits() {
    let gw = gateway(
        "",
        &format!(
            "[rate_limit.{}]\nrequests_per_sec = 3\nbytes_per_sec = 1048576\n",
            OTHER.access_key_id
        ),
    )
    .await;
    let admin = gw.client();
    create_bucket(&admin, "rated").await;
    let other = gw.client_for(OTHER);
    let mut refused = 0;
    for _ in 0..10 {
        match other.head_bucket().bucket("rated").send().await {
            Ok(_) => {}
            Err(e) => {
                assert_eq!(s3_err(&e).status, 503, "{e:?}");
                refused += 1;
            }
        }
    }
    assert!(refused >= 6, "only {refused} of 10 refused");
    let refusal = other
        .list_objects_v2()
        .bucket("rated")
        .send()
        .await
        .expect_err("over the limit");
    let err = s3_err(&refusal);
    assert_eq!((err.status, err.code.as_deref()), (503, Some("SlowDown")));
    // The admin key has no limit.
    for _ in 0..10 {
        admin
            .head_bucket()
            .bucket("rated")
            .send()
            .await
            .expect("admin");
    }
    tokio::time::sleep(Duration::from_millis(1100)).await;
    other
        .head_bucket()
        .bucket("rated")
        .send()
        .await
        .expect("the bucket has refilled");

    // 3 MiB at 1 MiB/s, one of them from the full bucket: about two seconds, then 200.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let body = vec![b'r'; 3 << 20];
    let started = Instant::now();
    put(&other, "rated", "throttled", &body).await;
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "{took:?}"
    );
    eprintln!("3 MiB at 1 MiB/s took {took:?}");
    assert_eq!(get(&admin, "rated", "throttled").await, body);
    gw.shutdown().await;
}

/// A DeleteObjects document sent a byte at a time is cut with RequestTimeout; nothing is
/// deleted.
#[tokio::test]
async fn a_trickling_xml_body_times_out() {
    let gw = gateway(
        "min_body_bytes_per_sec = 1024\nmin_body_rate_window_secs = 2\n",
        "",
    )
    .await;
    let admin = gw.client();
    create_bucket(&admin, "xml").await;
    put(&admin, "xml", "keep", b"still here").await;
    let doc = b"<Delete><Object><Key>keep</Key></Object></Delete>";
    let md5 = md5_b64(doc);
    let stream = gw
        .start_request(
            ADMIN,
            "POST",
            "xml?delete",
            &[("content-md5", md5.as_str())],
            doc,
            3,
        )
        .await;
    let (response, took) =
        trickle_until_answered(stream, Duration::from_secs(1), Duration::from_secs(15)).await;
    assert_error(&response, 400, "RequestTimeout", TIMEOUT_MESSAGE);
    assert!(
        took >= Duration::from_millis(1500) && took < Duration::from_secs(6),
        "cut after {took:?}"
    );
    assert_eq!(get(&admin, "xml", "keep").await, b"still here");
    gw.shutdown().await;
}

/// An XML body that stops arriving is cut by the idle timeout even with no minimum rate.
#[tokio::test]
async fn a_stalled_xml_body_hits_the_idle_timeout() {
    let gw = gateway(
        "min_body_bytes_per_sec = 0\nbody_idle_timeout_secs = 2\n",
        "",
    )
    .await;
    let admin = gw.client();
    create_bucket(&admin, "idle").await;
    let doc = b"<Delete><Object><Key>k</Key></Object></Delete>";
    let md5 = md5_b64(doc);
    let stream = gw
        .start_request(
            ADMIN,
            "POST",
            "idle?delete",
            &[("content-md5", md5.as_str())],
            doc,
            3,
        )
        .await;
    let (response, took) = answer(stream, Duration::from_secs(10)).await;
    assert_error(&response, 400, "RequestTimeout", TIMEOUT_MESSAGE);
    assert!(took < Duration::from_secs(5), "{took:?}");
    gw.shutdown().await;
}

/// The issue's exact case at the default rate limits (4096 bytes/s over 20 s): two clients of
/// two credentials sending one byte every 5 s against a 10 MiB budget. Prints the figures;
/// about 25 s. `cargo test -p hansa-conformance --test fair_budget -- --ignored --nocapture`
#[tokio::test]
#[ignore = "a measurement (25 s)"]
async fn measure_the_issue_case_at_the_defaults() {
    let gw = gateway("", "").await;
    let admin = gw.client();
    create_bucket(&admin, "slow").await;
    create_bucket(&admin, LIMITED_BUCKET).await;
    put(&admin, "slow", "t1", b"previous one").await;
    put(&admin, "slow", "t2", b"previous two").await;
    let big = vec![b'z'; 10 << 20];
    let t1 = gw.start_put_as(ADMIN, "slow", "t1", &big, 1).await;
    let t2 = gw.start_put_as(OTHER, "slow", "t2", &big, 1).await;
    let tricklers = [t1, t2].map(|s| {
        tokio::spawn(trickle_until_answered(
            s,
            Duration::from_secs(5),
            Duration::from_secs(60),
        ))
    });
    let limited = gw.client_for(LIMITED);
    let mut worst = Duration::ZERO;
    for i in 0..10 {
        tokio::time::sleep(Duration::from_secs(1)).await;
        let started = Instant::now();
        put(&limited, LIMITED_BUCKET, &format!("small-{i}"), b"hello").await;
        worst = worst.max(started.elapsed());
    }
    eprintln!("10 5-byte PUTs during the trickle, the slowest: {worst:?}");
    assert!(worst < Duration::from_secs(2));
    for t in tricklers {
        let (response, took) = t.await.expect("trickler");
        assert_error(&response, 400, "RequestTimeout", TIMEOUT_MESSAGE);
        eprintln!("trickler cut after {took:?}");
    }
    assert_eq!(get(&admin, "slow", "t1").await, b"previous one");
    assert_eq!(get(&admin, "slow", "t2").await, b"previous two");
    wait_for_budget_released(&gw).await;
    gw.shutdown().await;
}
