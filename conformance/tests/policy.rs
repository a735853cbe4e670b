//! Bucket policies and the public access block through aws-sdk-s3: the documents' round trips,
//! S3's refusals of malformed policies, and a policy's effect on requests (an explicit Deny
//! refuses, an Allow lets a key in beyond its scope, deleting the policy restores access).

use aws_sdk_s3::types::PublicAccessBlockConfiguration;
use hansa_conformance::{
    assert_s3_err, create_bucket, get, put, s3_err, Options, TestGateway, LIMITED, LIMITED_BUCKET,
};

fn policy(bucket: &str, statements: &str) -> String {
    format!(r#"{{"Version":"2012-10-17","Id":"test-{bucket}","Statement":[{statements}]}}"#)
}

fn public_read(bucket: &str) -> String {
    policy(
        bucket,
        &format!(
            r#"{{"Sid":"PublicRead","Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{bucket}/*"}}"#
        ),
    )
}

async fn put_policy(s3: &aws_sdk_s3::Client, bucket: &str, doc: &str) {
    s3.put_bucket_policy()
        .bucket(bucket)
        .policy(doc)
        .send()
        .await
        .unwrap_or_else(|e| panic!("put policy {doc}: {e:?}"));
}

async fn delete_policy(s3: &aws_sdk_s3::Client, bucket: &str) {
    s3.delete_bucket_policy()
        .bucket(bucket)
        .send()
        .await
        .expect("delete policy");
}

async fn is_public(s3: &aws_sdk_s3::Client, bucket: &str) -> bool {
    s3.get_bucket_policy_status()
        .bucket(bucket)
        .send()
        .await
        .expect("policy status")
        .policy_status()
        .and_then(|s| s.is_public())
        .expect("IsPublic")
}

#[tokio::test]
async fn policy_round_trip_and_status() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "pol").await;
    let e = assert_s3_err!(
        s3.get_bucket_policy().bucket("pol").send().await,
        404,
        "NoSuchBucketPolicy"
    );
    assert_eq!(
        e.message.as_deref(),
        Some("The bucket policy does not exist")
    );
    assert_s3_err!(
        s3.get_bucket_policy_status().bucket("pol").send().await,
        404,
        "NoSuchBucketPolicy"
    );
    // Kept verbatim, whitespace and all.
    let private = format!(
        "{{\n  \"Statement\": {{\"Effect\": \"Allow\",\n  \"Principal\": {{\"AWS\": [\"arn:aws:iam::000000000000:user/{}\"]}},\n  \"Action\": [\"s3:GetObject\", \"s3:ListBucket\"],\n  \"Resource\": [\"arn:aws:s3:::pol\", \"arn:aws:s3:::pol/*\"]}}\n}}",
        LIMITED.access_key_id
    );
    s3.put_bucket_policy()
        .bucket("pol")
        .policy(&private)
        .confirm_remove_self_bucket_access(true)
        .send()
        .await
        .expect("put policy");
    let got = s3
        .get_bucket_policy()
        .bucket("pol")
        .send()
        .await
        .expect("get policy");
    assert_eq!(got.policy(), Some(private.as_str()));
    assert!(!is_public(&s3, "pol").await);
    // Replaced by a public one.
    put_policy(&s3, "pol", &public_read("pol")).await;
    assert!(is_public(&s3, "pol").await);
    // A public statement pinned to a source range is not public.
    put_policy(
        &s3,
        "pol",
        &policy(
            "pol",
            r#"{"Effect":"Allow","Principal":{"AWS":"*"},"Action":"s3:GetObject","Resource":"arn:aws:s3:::pol/*","Condition":{"IpAddress":{"aws:SourceIp":"203.0.113.0/24"}}}"#,
        ),
    )
    .await;
    assert!(!is_public(&s3, "pol").await);
    delete_policy(&s3, "pol").await;
    assert_s3_err!(
        s3.get_bucket_policy().bucket("pol").send().await,
        404,
        "NoSuchBucketPolicy"
    );
    // Deleting again is still a success, as in S3.
    delete_policy(&s3, "pol").await;
    assert_s3_err!(
        s3.get_bucket_policy().bucket("nope").send().await,
        404,
        "NoSuchBucket"
    );
    assert_s3_err!(
        s3.put_bucket_policy()
            .bucket("nope")
            .policy(public_read("nope"))
            .send()
            .await,
        404,
        "NoSuchBucket"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn malformed_policies_are_refused_with_s3s_messages() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "strict").await;
    create_bucket(&s3, "elsewhere").await;
    let statement = |principal: &str, action: &str, resource: &str| {
        policy(
            "strict",
            &format!(
                r#"{{"Effect":"Allow","Principal":{principal},"Action":"{action}","Resource":"{resource}"}}"#
            ),
        )
    };
    let cases = [
        ("{not json".to_string(), "This policy contains invalid Json"),
        (
            r#"{"Version":"2012-10-17"}"#.to_string(),
            "Missing required field Statement",
        ),
        (
            statement(r#""*""#, "s3:GetObject", "arn:aws:s3:::elsewhere/*"),
            "Policy has invalid resource",
        ),
        (
            statement(r#""*""#, "s3:FlyAway", "arn:aws:s3:::strict/*"),
            "Policy has invalid action",
        ),
        (
            statement(
                r#"{"AWS":"NOSUCHKEY"}"#,
                "s3:GetObject",
                "arn:aws:s3:::strict/*",
            ),
            "Invalid principal in policy",
        ),
        (
            policy(
                "strict",
                r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":"arn:aws:s3:::strict/*","Condition":{"StringEquals":{"s3:ExistingObjectTag/x":"y"}}}"#,
            ),
            "Policy has an invalid condition key",
        ),
        (
            format!(r#"{{"Id":"{}","Statement":[]}}"#, "x".repeat(21 * 1024)),
            "Policy exceeds the maximum allowed document size.",
        ),
    ];
    for (doc, message) in cases {
        let e = assert_s3_err!(
            s3.put_bucket_policy()
                .bucket("strict")
                .policy(&doc)
                .send()
                .await,
            400,
            "MalformedPolicy"
        );
        assert_eq!(e.message.as_deref(), Some(message), "{doc:.200}");
    }
    // None of them was stored.
    assert_s3_err!(
        s3.get_bucket_policy().bucket("strict").send().await,
        404,
        "NoSuchBucketPolicy"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn public_access_block_round_trip_and_block_public_policy() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "guarded").await;
    assert_s3_err!(
        s3.get_public_access_block().bucket("guarded").send().await,
        404,
        "NoSuchPublicAccessBlockConfiguration"
    );
    s3.put_public_access_block()
        .bucket("guarded")
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .block_public_policy(true)
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .expect("put public access block");
    let got = s3
        .get_public_access_block()
        .bucket("guarded")
        .send()
        .await
        .expect("get public access block");
    let c = got
        .public_access_block_configuration()
        .expect("configuration");
    assert_eq!(
        (
            c.block_public_acls(),
            c.ignore_public_acls(),
            c.block_public_policy(),
            c.restrict_public_buckets()
        ),
        (Some(false), Some(false), Some(true), Some(true))
    );
    // A public policy is refused; one limited to a source range is not public, so it goes in.
    assert_s3_err!(
        s3.put_bucket_policy()
            .bucket("guarded")
            .policy(public_read("guarded"))
            .send()
            .await,
        403,
        "AccessDenied"
    );
    put_policy(
        &s3,
        "guarded",
        &policy(
            "guarded",
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::guarded/*","Condition":{"IpAddress":{"aws:SourceIp":"198.51.100.0/24"}}}"#,
        ),
    )
    .await;
    s3.delete_public_access_block()
        .bucket("guarded")
        .send()
        .await
        .expect("delete public access block");
    assert_s3_err!(
        s3.get_public_access_block().bucket("guarded").send().await,
        404,
        "NoSuchPublicAccessBlockConfiguration"
    );
    put_policy(&s3, "guarded", &public_read("guarded")).await;
    assert!(is_public(&s3, "guarded").await);
    gw.shutdown().await;
}

#[tokio::test]
async fn a_deny_for_one_key_refuses_its_writes_until_the_policy_goes() {
    let gw = TestGateway::start().await;
    let admin = gw.client();
    let limited = gw.client_for(LIMITED);
    create_bucket(&admin, LIMITED_BUCKET).await;
    put(&limited, LIMITED_BUCKET, "before", b"one").await;
    put_policy(
        &admin,
        LIMITED_BUCKET,
        &policy(
            LIMITED_BUCKET,
            &format!(
                r#"{{"Sid":"NoWrites","Effect":"Deny","Principal":{{"AWS":"{}"}},"Action":["s3:PutObject","s3:DeleteObject"],"Resource":"arn:aws:s3:::{LIMITED_BUCKET}/*"}}"#,
                LIMITED.access_key_id
            ),
        ),
    )
    .await;
    assert_s3_err!(
        limited
            .put_object()
            .bucket(LIMITED_BUCKET)
            .key("after")
            .body(b"two".to_vec().into())
            .send()
            .await,
        403,
        "AccessDenied"
    );
    // Multipart uploads are PutObject too.
    assert_s3_err!(
        limited
            .create_multipart_upload()
            .bucket(LIMITED_BUCKET)
            .key("after")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_eq!(get(&limited, LIMITED_BUCKET, "before").await, b"one");
    // Other keys are not named by the statement.
    put(&admin, LIMITED_BUCKET, "admin", b"three").await;
    delete_policy(&admin, LIMITED_BUCKET).await;
    put(&limited, LIMITED_BUCKET, "after", b"two").await;
    gw.shutdown().await;
}

#[tokio::test]
async fn an_allow_lets_a_key_in_beyond_its_scope() {
    let gw = TestGateway::start().await;
    let admin = gw.client();
    let limited = gw.client_for(LIMITED);
    create_bucket(&admin, "shared").await;
    put(&admin, "shared", "pub/a", b"a").await;
    put(&admin, "shared", "private/b", b"b").await;
    // Outside its scope, the key is refused.
    assert_s3_err!(
        limited
            .get_object()
            .bucket("shared")
            .key("pub/a")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    put_policy(
        &admin,
        "shared",
        &policy(
            "shared",
            &format!(
                r#"{{"Effect":"Allow","Principal":{{"AWS":["{key}"]}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::shared/pub/*"}},
                {{"Effect":"Allow","Principal":{{"AWS":"{key}"}},"Action":"s3:ListBucket","Resource":"arn:aws:s3:::shared","Condition":{{"StringLike":{{"s3:prefix":"pub/*"}}}}}}"#,
                key = LIMITED.access_key_id
            ),
        ),
    )
    .await;
    assert_eq!(get(&limited, "shared", "pub/a").await, b"a");
    assert_s3_err!(
        limited
            .get_object()
            .bucket("shared")
            .key("private/b")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        limited
            .put_object()
            .bucket("shared")
            .key("pub/c")
            .body(b"c".to_vec().into())
            .send()
            .await,
        403,
        "AccessDenied"
    );
    // Listing only under the allowed prefix (the s3:prefix condition).
    let listed = limited
        .list_objects_v2()
        .bucket("shared")
        .prefix("pub/")
        .send()
        .await
        .expect("list pub/");
    assert_eq!(listed.key_count(), Some(1));
    assert_s3_err!(
        limited.list_objects_v2().bucket("shared").send().await,
        403,
        "AccessDenied"
    );
    gw.shutdown().await;
}

#[tokio::test]
async fn secure_transport_deny_refuses_plain_http() {
    let gw = TestGateway::start_with(Options {
        tls: true,
        ..Options::default()
    })
    .await;
    let plain = gw.client();
    let secure = gw.tls_client();
    create_bucket(&plain, "tlsonly").await;
    put(&plain, "tlsonly", "k", b"v").await;
    put_policy(
        &plain,
        "tlsonly",
        &policy(
            "tlsonly",
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:*","Resource":["arn:aws:s3:::tlsonly","arn:aws:s3:::tlsonly/*"],"Condition":{"Bool":{"aws:SecureTransport":"false"}}}"#,
        ),
    )
    .await;
    assert_s3_err!(
        plain.get_object().bucket("tlsonly").key("k").send().await,
        403,
        "AccessDenied"
    );
    assert_s3_err!(
        plain.list_objects_v2().bucket("tlsonly").send().await,
        403,
        "AccessDenied"
    );
    assert_eq!(get(&secure, "tlsonly", "k").await, b"v");
    // The administrator can still read and remove the policy, even over plain HTTP.
    plain
        .get_bucket_policy()
        .bucket("tlsonly")
        .send()
        .await
        .expect("admin reads a denying policy");
    delete_policy(&plain, "tlsonly").await;
    assert_eq!(get(&plain, "tlsonly", "k").await, b"v");
    gw.shutdown().await;
}

#[tokio::test]
async fn source_ip_deny_refuses_loopback_clients() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    let limited = gw.client_for(LIMITED);
    create_bucket(&s3, LIMITED_BUCKET).await;
    put(&s3, LIMITED_BUCKET, "k", b"v").await;
    put_policy(
        &s3,
        LIMITED_BUCKET,
        &policy(
            LIMITED_BUCKET,
            &format!(
                r#"{{"Effect":"Deny","Principal":{{"AWS":"*"}},"Action":"s3:GetObject","Resource":"arn:aws:s3:::{LIMITED_BUCKET}/*","Condition":{{"IpAddress":{{"aws:SourceIp":["127.0.0.0/8","::1/128"]}}}}}}"#
            ),
        ),
    )
    .await;
    for client in [&s3, &limited] {
        let e = client
            .get_object()
            .bucket(LIMITED_BUCKET)
            .key("k")
            .send()
            .await
            .expect_err("denied from loopback");
        assert_eq!(s3_err(&e).status, 403);
    }
    // Only reads were denied.
    put(&limited, LIMITED_BUCKET, "k2", b"w").await;
    // A range the client is not in denies nothing.
    put_policy(
        &s3,
        LIMITED_BUCKET,
        &policy(
            LIMITED_BUCKET,
            &format!(
                r#"{{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::{LIMITED_BUCKET}/*","Condition":{{"IpAddress":{{"aws:SourceIp":"192.0.2.0/24"}}}}}}"#
            ),
        ),
    )
    .await;
    assert_eq!(get(&limited, LIMITED_BUCKET, "k").await, b"v");
    delete_policy(&s3, LIMITED_BUCKET).await;
    assert_eq!(get(&s3, LIMITED_BUCKET, "k2").await, b"w");
    gw.shutdown().await;
}

/// The verdict the request authorization asks for, for anonymous requests (which this gateway
/// does not serve yet): a public policy grants them access, RestrictPublicBuckets takes that
/// away while named keys keep theirs, and a Deny stays a Deny.
#[tokio::test]
async fn restrict_public_buckets_keeps_anonymous_requests_out() {
    use hansa::access::{Decision, Principal, RequestFacts};
    use hansa::s3::ops::policy::bucket_policy_decision;
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "open").await;
    let facts = |principal: Principal, key: &str| RequestFacts {
        principal,
        action: "s3:GetObject",
        bucket: "open".into(),
        key: Some(key.into()),
        source_ip: Some("192.0.2.1".parse().unwrap()),
        secure_transport: false,
        conditions: Vec::new(),
    };
    let anonymous = facts(Principal::Anonymous, "a");
    let limited = facts(Principal::Key(LIMITED.access_key_id.into()), "a");
    let decide = |f: &RequestFacts| bucket_policy_decision(gw.store(), f).expect("decision");
    assert_eq!(decide(&anonymous), Decision::NoOpinion, "no policy yet");
    put_policy(
        &s3,
        "open",
        &policy(
            "open",
            r#"{"Effect":"Allow","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::open/*"},
            {"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::open/secret"}"#,
        ),
    )
    .await;
    assert_eq!(decide(&anonymous), Decision::Allow);
    assert_eq!(decide(&limited), Decision::Allow);
    assert_eq!(
        decide(&facts(Principal::Anonymous, "secret")),
        Decision::Deny
    );
    s3.put_public_access_block()
        .bucket("open")
        .public_access_block_configuration(
            PublicAccessBlockConfiguration::builder()
                .restrict_public_buckets(true)
                .build(),
        )
        .send()
        .await
        .expect("put public access block");
    assert_eq!(decide(&anonymous), Decision::NoOpinion);
    assert_eq!(decide(&limited), Decision::Allow);
    assert_eq!(
        decide(&facts(Principal::Anonymous, "secret")),
        Decision::Deny
    );
    // A bucket that does not exist has no opinion: the operation reports NoSuchBucket.
    let mut missing = anonymous.clone();
    missing.bucket = "missing".into();
    assert_eq!(decide(&missing), Decision::NoOpinion);
    gw.shutdown().await;
}

/// DeleteObjects names its keys in the body; each is judged as `s3:DeleteObject` on its object,
/// so a Deny on some keys fails just those, as in S3.
#[tokio::test]
async fn delete_objects_is_judged_key_by_key() {
    use aws_sdk_s3::types::{Delete, ObjectIdentifier};
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "keepers").await;
    put(&s3, "keepers", "keep/a", b"a").await;
    put(&s3, "keepers", "tmp/b", b"b").await;
    put_policy(
        &s3,
        "keepers",
        &policy(
            "keepers",
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:DeleteObject","Resource":"arn:aws:s3:::keepers/keep/*"}"#,
        ),
    )
    .await;
    assert_s3_err!(
        s3.delete_object()
            .bucket("keepers")
            .key("keep/a")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    let ids = ["keep/a", "tmp/b"].map(|k| ObjectIdentifier::builder().key(k).build().unwrap());
    let out = s3
        .delete_objects()
        .bucket("keepers")
        .delete(
            Delete::builder()
                .set_objects(Some(ids.to_vec()))
                .build()
                .unwrap(),
        )
        .send()
        .await
        .expect("delete objects");
    let deleted: Vec<_> = out.deleted().iter().filter_map(|d| d.key()).collect();
    assert_eq!(deleted, ["tmp/b"]);
    let errors: Vec<_> = out
        .errors()
        .iter()
        .map(|e| (e.key().unwrap_or(""), e.code().unwrap_or("")))
        .collect();
    assert_eq!(errors, [("keep/a", "AccessDenied")]);
    assert_eq!(get(&s3, "keepers", "keep/a").await, b"a");
    gw.shutdown().await;
}

/// A copy reads its source as `s3:GetObject`: the source bucket's Deny stops CopyObject and
/// UploadPartCopy, whatever the destination allows.
#[tokio::test]
async fn a_copy_needs_get_object_on_its_source() {
    let gw = TestGateway::start().await;
    let s3 = gw.client();
    create_bucket(&s3, "vault").await;
    create_bucket(&s3, "scratch").await;
    put(&s3, "vault", "secret", b"s").await;
    put(&s3, "vault", "open", b"o").await;
    put_policy(
        &s3,
        "vault",
        &policy(
            "vault",
            r#"{"Effect":"Deny","Principal":"*","Action":"s3:GetObject","Resource":"arn:aws:s3:::vault/secret"}"#,
        ),
    )
    .await;
    assert_s3_err!(
        s3.copy_object()
            .bucket("scratch")
            .key("leak")
            .copy_source("vault/secret")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    let upload = s3
        .create_multipart_upload()
        .bucket("scratch")
        .key("leak")
        .send()
        .await
        .expect("create upload");
    assert_s3_err!(
        s3.upload_part_copy()
            .bucket("scratch")
            .key("leak")
            .upload_id(upload.upload_id().unwrap_or_default())
            .part_number(1)
            .copy_source("vault/secret")
            .send()
            .await,
        403,
        "AccessDenied"
    );
    s3.copy_object()
        .bucket("scratch")
        .key("fine")
        .copy_source("vault/open")
        .send()
        .await
        .expect("copy of an allowed source");
    assert_eq!(get(&s3, "scratch", "fine").await, b"o");
    gw.shutdown().await;
}
