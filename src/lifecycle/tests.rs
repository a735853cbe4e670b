use super::*;

fn doc(rules: &str) -> String {
    format!("<LifecycleConfiguration>{rules}</LifecycleConfiguration>")
}

fn parse(rules: &str) -> Result<LifecycleConfiguration, ConfigError> {
    LifecycleConfiguration::parse(doc(rules).as_bytes())
}

fn one(rule: &str) -> Result<Rule, ConfigError> {
    parse(rule).map(|mut c| c.rules.remove(0))
}

const MIDNIGHT_2027: u64 = 1_798_761_600_000; // 2027-01-01T00:00:00Z

fn object<'a>(
    key: &'a str,
    size: u64,
    modified_ms: u64,
    tags: &'a [(String, String)],
) -> ObjectFacts<'a> {
    ObjectFacts {
        key,
        size,
        modified_ms,
        tags,
    }
}

#[test]
fn every_filter_kind_parses_and_round_trips() {
    let text = doc(concat!(
        "<Rule><ID>legacy</ID><Prefix>old/</Prefix><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
        "<Rule><ID>all</ID><Filter/><Status>Disabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>3</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>",
        "<Rule><ID>prefix</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Date>2027-01-01T00:00:00Z</Date></Expiration></Rule>",
        "<Rule><ID>tag</ID><Filter><Tag><Key>k</Key><Value>v &amp; w</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>30</Days></Expiration></Rule>",
        "<Rule><ID>gt</ID><Filter><ObjectSizeGreaterThan>100</ObjectSizeGreaterThan></Filter><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>5</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>",
        "<Rule><ID>lt</ID><Filter><ObjectSizeLessThan>100</ObjectSizeLessThan></Filter><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>",
        "<Rule><ID>and</ID><Filter><And><Prefix>p/</Prefix><Tag><Key>a</Key><Value>1</Value></Tag><Tag><Key>b</Key><Value>2</Value></Tag><ObjectSizeGreaterThan>1</ObjectSizeGreaterThan><ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter><Status>Enabled</Status><Expiration><Days>2</Days></Expiration></Rule>",
    ));
    let config = LifecycleConfiguration::parse(text.as_bytes()).expect("valid");
    assert_eq!(config.rules.len(), 7);
    assert_eq!(config.rules[0].filter, Filter::LegacyPrefix("old/".into()));
    assert_eq!(config.rules[1].filter, Filter::All);
    assert!(!config.rules[1].enabled);
    assert_eq!(
        config.rules[2].expiration,
        Some(Expiration::Date(MIDNIGHT_2027))
    );
    assert_eq!(
        config.rules[3].filter,
        Filter::Tag(Tag {
            key: "k".into(),
            value: "v & w".into()
        })
    );
    assert_eq!(
        config.rules[4].noncurrent_expiration,
        Some(NoncurrentExpiration {
            noncurrent_days: 5,
            newer_noncurrent_versions: Some(2)
        })
    );
    assert_eq!(
        config.rules[5].expiration,
        Some(Expiration::ExpiredObjectDeleteMarker)
    );
    // What Get writes parses back to the same configuration, and so does the stored JSON.
    let again = LifecycleConfiguration::parse(config.to_xml().as_bytes()).expect("own xml");
    assert_eq!(again, config);
    assert_eq!(
        LifecycleConfiguration::from_json(&config.to_json()),
        Some(config)
    );
}

#[test]
fn a_false_marker_clean_up_asks_for_nothing() {
    let with_days = one("<Rule><Filter/><Status>Enabled</Status><Expiration><Days>3</Days><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration></Rule>").unwrap();
    assert_eq!(with_days.expiration, Some(Expiration::Days(3)));
    assert_eq!(
        one("<Rule><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>false</ExpiredObjectDeleteMarker></Expiration></Rule>"),
        Err(ConfigError::InvalidRequest("At least one action needs to be specified in a rule".into()))
    );
    assert_eq!(
        one("<Rule><Filter/><Status>Enabled</Status><Expiration><Days>3</Days><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>"),
        Err(ConfigError::Malformed)
    );
}

#[test]
fn a_rule_without_an_id_gets_one() {
    let config = parse(concat!(
        "<Rule><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
        "<Rule><ID></ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
    ))
    .expect("valid");
    assert!(!config.rules[0].id.is_empty());
    assert_ne!(config.rules[0].id, config.rules[1].id);
}

#[test]
fn structural_faults_are_malformed() {
    let ok_action = "<Expiration><Days>1</Days></Expiration>";
    for bad in [
        String::new(),
        "not xml".to_string(),
        "<Other/>".to_string(),
        "<LifecycleConfiguration/>".to_string(),
        doc(""),
        doc(&format!("<Rule><Filter/>{ok_action}</Rule>")),
        doc(&format!("<Rule><Filter/><Status>On</Status>{ok_action}</Rule>")),
        doc(&format!("<Rule><Status>Enabled</Status>{ok_action}</Rule>")),
        doc(&format!("<Rule><Filter><Prefix>a</Prefix><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status>{ok_action}</Rule>")),
        doc(&format!("<Rule><Filter><ObjectSizeGreaterThan>1</ObjectSizeGreaterThan><ObjectSizeLessThan>9</ObjectSizeLessThan></Filter><Status>Enabled</Status>{ok_action}</Rule>")),
        doc(&format!("<Rule><Filter><And></And></Filter><Status>Enabled</Status>{ok_action}</Rule>")),
        doc(&format!("<Rule><Filter><Tag><Key>k</Key></Tag></Filter><Status>Enabled</Status>{ok_action}</Rule>")),
        doc("<Rule><Filter/><Status>Enabled</Status><Expiration><Days>x</Days></Expiration></Rule>"),
        doc("<Rule><Filter/><Status>Enabled</Status><Expiration><Days>1</Days><Date>2027-01-01T00:00:00Z</Date></Expiration></Rule>"),
        doc("<Rule><Filter/><Status>Enabled</Status><Expiration><Date>tomorrow</Date></Expiration></Rule>"),
        doc(&format!("<Rule><Filter/><Status>Enabled</Status><Bogus/>{ok_action}</Rule>")),
        doc(&format!("<Rule><Filter/><Status>Enabled</Status>{ok_action}{ok_action}</Rule>")),
        doc("<Rule><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration/></Rule>"),
        format!("<!DOCTYPE x>{}", doc(&format!("<Rule><Filter/><Status>Enabled</Status>{ok_action}</Rule>"))),
    ] {
        assert_eq!(
            LifecycleConfiguration::parse(bad.as_bytes()),
            Err(ConfigError::Malformed),
            "{bad}"
        );
    }
}

#[test]
fn invalid_values_are_named_as_s3_names_them() {
    let expect = |rule: &str, want: ConfigError| assert_eq!(one(rule), Err(want), "{rule}");
    let arg = |m: &str| ConfigError::InvalidArgument(m.to_string());
    expect(
        "<Rule><Filter/><Status>Enabled</Status><Expiration><Days>0</Days></Expiration></Rule>",
        arg("'Days' for Expiration action must be a positive integer"),
    );
    expect(
        "<Rule><Filter/><Status>Enabled</Status><Expiration><Date>2027-01-01T12:00:00Z</Date></Expiration></Rule>",
        arg("'Date' must be at midnight GMT"),
    );
    expect(
        &format!("<Rule><ID>{}</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>", "x".repeat(256)),
        arg("ID length should not exceed allowed limit of 255"),
    );
    expect(
        "<Rule><Filter/><Status>Enabled</Status></Rule>",
        ConfigError::InvalidRequest("At least one action needs to be specified in a rule".into()),
    );
    expect(
        "<Rule><Filter><Tag><Key>k</Key><Value>v</Value></Tag></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>",
        ConfigError::InvalidRequest("AbortIncompleteMultipartUpload cannot be specified with Tags".into()),
    );
    expect(
        "<Rule><Filter/><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>0</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>",
        arg("'DaysAfterInitiation' for AbortIncompleteMultipartUpload action must be a positive integer"),
    );
    expect(
        "<Rule><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>-1</NoncurrentDays></NoncurrentVersionExpiration></Rule>",
        arg("'NoncurrentDays' for NoncurrentVersionExpiration action must be a positive integer"),
    );
    expect(
        "<Rule><Filter><And><ObjectSizeGreaterThan>9</ObjectSizeGreaterThan><ObjectSizeLessThan>9</ObjectSizeLessThan></And></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
        arg("ObjectSizeGreaterThan must be less than ObjectSizeLessThan"),
    );
    expect(
        "<Rule><Prefix>a</Prefix><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
        arg("The Filter and Prefix elements are mutually exclusive"),
    );
    assert!(matches!(
        one("<Rule><Filter/><Status>Enabled</Status><Transition><Days>1</Days><StorageClass>GLACIER</StorageClass></Transition></Rule>"),
        Err(ConfigError::Unsupported(_))
    ));
    let same = "<Rule><ID>a</ID><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>";
    assert_eq!(
        parse(&same.repeat(2)),
        Err(arg(
            "Rule ID must be unique. Found same ID for more than one rule"
        ))
    );
    let many =
        "<Rule><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
            .repeat(MAX_RULES + 1);
    assert_eq!(
        parse(&many),
        Err(arg(
            "Lifecycle configuration allows a maximum of 1000 rules"
        ))
    );
    assert!(parse(
        &"<Rule><Filter/><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>"
            .repeat(MAX_RULES)
    )
    .is_ok());
}

#[test]
fn expiry_falls_on_the_first_midnight_after_mtime_plus_days() {
    // Modified 2027-01-01 15:00: with 1 day it is due at 2027-01-03 00:00, not a moment before.
    let mtime = MIDNIGHT_2027 + 15 * 3_600_000;
    assert_eq!(due_after(mtime, 1), MIDNIGHT_2027 + 2 * DAY_MS);
    // Exactly at midnight: due exactly `days` later.
    assert_eq!(due_after(MIDNIGHT_2027, 1), MIDNIGHT_2027 + DAY_MS);
    let config = parse("<Rule><ID>r</ID><Filter><Prefix>logs/</Prefix></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>").unwrap();
    let due = MIDNIGHT_2027 + 2 * DAY_MS;
    let o = object("logs/a", 1, mtime, &[]);
    assert!(config.expiring_rule(&o, due - 1).is_none());
    assert_eq!(
        config.expiring_rule(&o, due).map(|r| r.id.as_str()),
        Some("r")
    );
    assert!(config
        .expiring_rule(&object("data/a", 1, mtime, &[]), due)
        .is_none());
}

#[test]
fn date_rules_act_from_their_date_on_whatever_the_age() {
    let config = parse("<Rule><Filter/><Status>Enabled</Status><Expiration><Date>2027-01-01T00:00:00.000Z</Date></Expiration></Rule>").unwrap();
    let o = object("k", 1, MIDNIGHT_2027 - 1, &[]);
    assert!(config.expiring_rule(&o, MIDNIGHT_2027 - 1).is_none());
    assert!(config.expiring_rule(&o, MIDNIGHT_2027).is_some());
    // An object written after the date is still within the rule (S3: "from that date on").
    assert!(config
        .expiring_rule(
            &object("k", 1, MIDNIGHT_2027 + DAY_MS, &[]),
            MIDNIGHT_2027 + DAY_MS
        )
        .is_some());
}

#[test]
fn filters_select_by_size_tags_and_all_of_and() {
    let tags = vec![("team".to_string(), "a".to_string())];
    let f = Filter::And {
        prefix: Some("p/".into()),
        tags: vec![Tag {
            key: "team".into(),
            value: "a".into(),
        }],
        greater_than: Some(10),
        less_than: Some(20),
    };
    assert!(f.matches(&object("p/x", 15, 0, &tags)));
    assert!(
        !f.matches(&object("p/x", 10, 0, &tags)),
        "greater-than is strict"
    );
    assert!(
        !f.matches(&object("p/x", 20, 0, &tags)),
        "less-than is strict"
    );
    assert!(!f.matches(&object("q/x", 15, 0, &tags)));
    assert!(!f.matches(&object("p/x", 15, 0, &[])));
    assert!(Filter::All.matches(&object("anything", 0, 0, &[])));
    assert!(Filter::SizeGreaterThan(0).matches(&object("k", 1, 0, &[])));
    assert!(!Filter::SizeLessThan(1).matches(&object("k", 1, 0, &[])));
}

#[test]
fn disabled_rules_and_marker_rules_expire_nothing() {
    let config = parse(concat!(
        "<Rule><Filter/><Status>Disabled</Status><Expiration><Days>1</Days></Expiration></Rule>",
        "<Rule><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>",
    ))
    .unwrap();
    assert!(config
        .expiring_rule(&object("k", 1, 0, &[]), u64::MAX)
        .is_none());
    assert!(!config.acts_on_current());
}

#[test]
fn uploads_are_aborted_days_after_initiation_by_prefix() {
    let config = parse("<Rule><ID>mp</ID><Filter><Prefix>tmp/</Prefix></Filter><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>2</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>").unwrap();
    let started = MIDNIGHT_2027 + 1;
    let due = MIDNIGHT_2027 + 3 * DAY_MS;
    assert!(config.aborting_rule("tmp/u", started, due - 1).is_none());
    assert!(config.aborting_rule("tmp/u", started, due).is_some());
    assert!(config.aborting_rule("keep/u", started, due).is_none());
}

#[test]
fn noncurrent_versions_wait_their_days_and_keep_the_newest() {
    let config = parse("<Rule><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>").unwrap();
    let version = |newer| NoncurrentFacts {
        object: object("k", 1, 0, &[]),
        noncurrent_since_ms: MIDNIGHT_2027,
        newer_noncurrent: newer,
    };
    let due = MIDNIGHT_2027 + DAY_MS;
    assert!(config.noncurrent_rule(&version(2), due - 1).is_none());
    assert!(config.noncurrent_rule(&version(2), due).is_some());
    assert!(
        config.noncurrent_rule(&version(1), due).is_none(),
        "one of the 2 newest kept"
    );
}

fn version(modified_ms: u64, delete_marker: bool) -> VersionFacts<'static> {
    VersionFacts {
        modified_ms,
        size: 1,
        tags: &[],
        delete_marker,
    }
}

fn indices(verdicts: &[VersionVerdict], kind: VerdictKind) -> Vec<usize> {
    verdicts
        .iter()
        .filter(|v| v.kind == kind)
        .map(|v| v.index)
        .collect()
}

#[test]
fn noncurrent_days_count_from_the_successor() {
    let config = parse("<Rule><ID>nc</ID><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>2</NoncurrentDays></NoncurrentVersionExpiration></Rule>").unwrap();
    // Current written on day 10, older versions on days 5 and 1 (newest first).
    let current = MIDNIGHT_2027 + 10 * DAY_MS + 5;
    let versions = [
        version(MIDNIGHT_2027 + 5 * DAY_MS + 5, false),
        version(MIDNIGHT_2027 + DAY_MS + 5, false),
    ];
    let at = |now| {
        indices(
            &config.version_verdicts("k", Some(current), &versions, now),
            VerdictKind::Noncurrent,
        )
    };
    // The oldest became noncurrent on day 5 (+5 ms): due at midnight starting day 8.
    assert_eq!(at(MIDNIGHT_2027 + 8 * DAY_MS - 1), Vec::<usize>::new());
    assert_eq!(at(MIDNIGHT_2027 + 8 * DAY_MS), vec![1]);
    // The newer one became noncurrent when the current was written (day 10): day 13.
    assert_eq!(at(MIDNIGHT_2027 + 13 * DAY_MS - 1), vec![1]);
    assert_eq!(at(MIDNIGHT_2027 + 13 * DAY_MS), vec![0, 1]);
    assert!(config
        .version_verdicts("k", Some(current), &versions, MIDNIGHT_2027 + 13 * DAY_MS)
        .iter()
        .all(|v| v.rule == "nc"));
}

#[test]
fn newer_noncurrent_versions_keeps_the_newest() {
    let config = parse("<Rule><Filter/><Status>Enabled</Status><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays><NewerNoncurrentVersions>2</NewerNoncurrentVersions></NoncurrentVersionExpiration></Rule>").unwrap();
    let versions: Vec<_> = (0..5)
        .map(|i| version(MIDNIGHT_2027 - i * DAY_MS, false))
        .collect();
    let verdicts = config.version_verdicts(
        "k",
        Some(MIDNIGHT_2027 + 1),
        &versions,
        MIDNIGHT_2027 + 30 * DAY_MS,
    );
    assert_eq!(indices(&verdicts, VerdictKind::Noncurrent), vec![2, 3, 4]);
}

#[test]
fn a_latest_delete_marker_is_not_noncurrent_and_goes_only_alone() {
    let eodm = parse("<Rule><ID>m</ID><Filter><Prefix>k</Prefix></Filter><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>").unwrap();
    let now = MIDNIGHT_2027 + 100 * DAY_MS;
    let lone = [version(MIDNIGHT_2027, true)];
    let v = eodm.version_verdicts("k", None, &lone, now);
    assert_eq!(indices(&v, VerdictKind::ExpiredDeleteMarker), vec![0]);
    assert_eq!(v[0].rule, "m");
    // Versions under it stay (no noncurrent rule): the marker stays.
    let covered = [
        version(MIDNIGHT_2027, true),
        version(MIDNIGHT_2027 - 5, false),
    ];
    assert!(eodm.version_verdicts("k", None, &covered, now).is_empty());
    // Another prefix: not this rule's marker.
    assert!(eodm.version_verdicts("other", None, &lone, now).is_empty());
    // A marker under a current object is noncurrent, not an expired marker.
    assert!(eodm
        .version_verdicts("k", Some(MIDNIGHT_2027 + 1), &lone, now)
        .is_empty());

    // With a noncurrent rule that removes everything under it, the marker goes in the same
    // verdict; the noncurrent rule also removes noncurrent markers.
    let both = parse("<Rule><ID>m</ID><Filter/><Status>Enabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration><NoncurrentVersionExpiration><NoncurrentDays>1</NoncurrentDays></NoncurrentVersionExpiration></Rule>").unwrap();
    let stack = [
        version(MIDNIGHT_2027, true),
        version(MIDNIGHT_2027 - DAY_MS, true),
        version(MIDNIGHT_2027 - 2 * DAY_MS, false),
    ];
    let v = both.version_verdicts("k", None, &stack, now);
    assert_eq!(indices(&v, VerdictKind::Noncurrent), vec![1, 2]);
    assert_eq!(indices(&v, VerdictKind::ExpiredDeleteMarker), vec![0]);
    // Not yet due: nothing under it goes, so neither does the marker.
    assert!(both
        .version_verdicts("k", None, &stack, MIDNIGHT_2027 - 1)
        .is_empty());
}

#[test]
fn expiration_days_and_date_remove_lone_markers_once_old_enough() {
    let days = parse(
        "<Rule><Filter/><Status>Enabled</Status><Expiration><Days>3</Days></Expiration></Rule>",
    )
    .unwrap();
    let made = MIDNIGHT_2027 + 7;
    assert!(days
        .marker_rule("k", made, MIDNIGHT_2027 + 4 * DAY_MS - 1)
        .is_none());
    assert!(days
        .marker_rule("k", made, MIDNIGHT_2027 + 4 * DAY_MS)
        .is_some());
    let date = parse("<Rule><Filter/><Status>Enabled</Status><Expiration><Date>2027-01-01T00:00:00Z</Date></Expiration></Rule>").unwrap();
    assert!(date.marker_rule("k", made, MIDNIGHT_2027 - 1).is_none());
    assert!(date.marker_rule("k", made, MIDNIGHT_2027).is_some());
    // Tag filters never select a marker (it has no tags); disabled rules act on nothing.
    let tagged = parse("<Rule><Filter><Tag><Key>a</Key><Value>b</Value></Tag></Filter><Status>Enabled</Status><Expiration><Days>1</Days></Expiration></Rule>").unwrap();
    assert!(tagged.marker_rule("k", made, u64::MAX).is_none());
    let off = parse("<Rule><Filter/><Status>Disabled</Status><Expiration><ExpiredObjectDeleteMarker>true</ExpiredObjectDeleteMarker></Expiration></Rule>").unwrap();
    assert!(off.marker_rule("k", made, u64::MAX).is_none());
    assert!(!off.acts_on_versions());
    // Abort-only rules do nothing to versions.
    let abort = parse("<Rule><Filter/><Status>Enabled</Status><AbortIncompleteMultipartUpload><DaysAfterInitiation>1</DaysAfterInitiation></AbortIncompleteMultipartUpload></Rule>").unwrap();
    assert!(!abort.acts_on_versions());
}

proptest::proptest! {
    #[test]
    fn due_is_a_midnight_no_earlier_than_days_later(mtime in 0u64..4_000_000_000_000, days in 1u32..5000) {
        let due = due_after(mtime, days);
        proptest::prop_assert_eq!(due % DAY_MS, 0);
        proptest::prop_assert!(due >= mtime + u64::from(days) * DAY_MS);
        proptest::prop_assert!(due < mtime + u64::from(days) * DAY_MS + DAY_MS);
    }

    #[test]
    fn parser_is_total(pieces in proptest::collection::vec(proptest::sample::select(&[
        "<LifecycleConfiguration>", "</LifecycleConfiguration>", "<Rule>", "</Rule>", "<Filter>",
        "</Filter>", "<And>", "</And>", "<Prefix>a</Prefix>", "<Status>Enabled</Status>",
        "<Expiration>", "</Expiration>", "<Days>1</Days>", "<Days>-3</Days>", "<Tag>", "</Tag>",
        "<Key>k</Key>", "<Value>v</Value>", "<ID>x</ID>", "&bogus;", "<Filter/>",
    ][..]), 0..24)) {
        let text: String = pieces.concat();
        if let Ok(config) = LifecycleConfiguration::parse(text.as_bytes()) {
            // Whatever is accepted writes back to the same configuration.
            proptest::prop_assert_eq!(LifecycleConfiguration::parse(config.to_xml().as_bytes()).ok(), Some(config));
        }
    }
}
