use super::*;
// An independent SHA-256 to check ring's against.
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

fn fixtures() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/tokens")
}

fn fixture(rel: &str) -> Vec<u8> {
    let path = fixtures().join(rel);
    std::fs::read(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn utc(rfc3339: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(rfc3339)
        .unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
        .with_timezone(&Utc)
}

fn fixed(rfc3339: &str) -> DateTime<FixedOffset> {
    DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{rfc3339}: {e}"))
}

/// The file minus BOM and whitespace: what the bearer must be.
fn normalised(bytes: &[u8]) -> String {
    let body = bytes.strip_prefix(UTF8_BOM).unwrap_or(bytes);
    body.iter()
        .filter(|b| !b.is_ascii_whitespace())
        .map(|&b| char::from(b))
        .collect()
}

enum Expect {
    Token {
        org: &'static str,
        expires: &'static str,
        created: &'static str,
        variants: Vec<Variant>,
        /// False for raw JSON files.
        bearer: bool,
        sample: bool,
    },
    Error(TokenError),
}

fn token(
    org: &'static str,
    expires: &'static str,
    created: &'static str,
    variants: &[Variant],
) -> Expect {
    Expect::Token {
        org,
        expires,
        created,
        variants: variants.to_vec(),
        bearer: !variants.contains(&Variant::RawJson),
        sample: false,
    }
}

fn table() -> Vec<(&'static str, Expect)> {
    use Variant::*;
    let not_json = |problem, raw| Expect::Error(TokenError::NotJson { problem, raw });
    let not_b64 = |problem| Expect::Error(TokenError::NotBase64 { problem });
    vec![
        (
            "valid/compact.vpptoken",
            token(
                "Compact Corp",
                "2031-08-16T01:13:52Z",
                "2030-08-16T01:13:52Z",
                &[],
            ),
        ),
        (
            "valid/trailing_newline.vpptoken",
            token(
                "Newline Ltd",
                "2031-09-01T00:00:00Z",
                "2030-09-01T00:00:00Z",
                &[],
            ),
        ),
        (
            "valid/wrapped76.vpptoken",
            token(
                "Wrapped 76 School",
                "2031-10-02T08:30:00Z",
                "2030-10-02T08:30:00Z",
                &[Wrapped],
            ),
        ),
        (
            "valid/wrapped48.vpptoken",
            token(
                "Wrapped 48 School",
                "2031-10-03T08:30:00Z",
                "2030-10-03T08:30:00Z",
                &[Wrapped],
            ),
        ),
        (
            "valid/crlf.vpptoken",
            token(
                "CRLF GmbH",
                "2031-11-04T09:00:00Z",
                "2030-11-04T09:00:00Z",
                &[CrLf, Wrapped],
            ),
        ),
        (
            "valid/bom.vpptoken",
            token(
                "BOM Inc",
                "2031-12-05T10:00:00Z",
                "2030-12-05T10:00:00Z",
                &[Bom],
            ),
        ),
        (
            "valid/crlf_bom.vpptoken",
            token(
                "Notepad Users AG",
                "2032-01-06T11:00:00Z",
                "2031-01-06T11:00:00Z",
                &[Bom, CrLf, Wrapped],
            ),
        ),
        (
            "valid/stray_spaces.vpptoken",
            token(
                "Stray Spaces SA",
                "2032-02-07T12:00:00Z",
                "2031-02-07T12:00:00Z",
                &[StraySpaces],
            ),
        ),
        (
            "valid/pretty.vpptoken",
            token(
                "Pretty Printed Pty",
                "2032-03-08T13:00:00Z",
                "2031-03-08T13:00:00Z",
                &[PrettyJson],
            ),
        ),
        (
            "valid/extra_keys.vpptoken",
            token(
                "Extra Keys Co",
                "2032-04-09T14:00:00Z",
                "2031-04-09T14:00:00Z",
                &[ExtraKeys],
            ),
        ),
        (
            "valid/offset_plus0530.vpptoken",
            token(
                "Mumbai Schools",
                "2032-05-10T03:30:00Z",
                "2031-05-10T03:30:00Z",
                &[],
            ),
        ),
        (
            "valid/offset_z.vpptoken",
            token(
                "Zulu Time BV",
                "2032-06-11T15:00:00Z",
                "2031-06-11T15:00:00Z",
                &[OffsetZ],
            ),
        ),
        (
            "valid/offset_colon.vpptoken",
            token(
                "Colon Offset Oy",
                "2032-07-12T16:00:00Z",
                "2031-07-12T16:00:00Z",
                &[OffsetWithColon],
            ),
        ),
        (
            "valid/fractional_seconds.vpptoken",
            token(
                "Fraction AB",
                "2032-08-13T17:00:00.250Z",
                "2031-08-13T17:00:00.250Z",
                &[FractionalSeconds],
            ),
        ),
        (
            "valid/raw_json.vpptoken",
            token(
                "Raw JSON LLC",
                "2032-09-14T18:00:00Z",
                "2031-09-14T18:00:00Z",
                &[RawJson],
            ),
        ),
        (
            "valid/raw_json_pretty.vpptoken",
            token(
                "Raw Pretty LLC",
                "2032-09-15T18:00:00Z",
                "2031-09-15T18:00:00Z",
                &[PrettyJson, RawJson],
            ),
        ),
        (
            "valid/org_escapes.vpptoken",
            token(
                "Café / Bar \"Nord\"",
                "2032-10-16T19:00:00Z",
                "2031-10-16T19:00:00Z",
                &[],
            ),
        ),
        (
            "valid/org_unicode.vpptoken",
            token(
                "Schule Köln – 東京校",
                "2032-11-17T20:00:00Z",
                "2031-11-17T20:00:00Z",
                &[],
            ),
        ),
        (
            "valid/no_org_name.vpptoken",
            token(
                "",
                "2032-12-18T21:00:00Z",
                "2031-12-18T21:00:00Z",
                &[NoOrgName],
            ),
        ),
        (
            "valid/leap_day.vpptoken",
            token(
                "Leap Day Ltd",
                "2032-02-29T12:00:00Z",
                "2031-02-28T12:00:00Z",
                &[],
            ),
        ),
        (
            "valid/sample.vpptoken",
            Expect::Token {
                org: "Sample Org",
                expires: "2033-01-19T22:00:00Z",
                created: "2032-01-19T22:00:00Z",
                variants: vec![Wrapped],
                bearer: true,
                sample: true,
            },
        ),
        (
            "valid/canary.vpptoken",
            token(
                "Canary Org",
                "2033-02-20T23:00:00Z",
                "2032-02-20T23:00:00Z",
                &[Wrapped],
            ),
        ),
        ("invalid/empty.vpptoken", Expect::Error(TokenError::Empty)),
        (
            "invalid/whitespace_only.vpptoken",
            Expect::Error(TokenError::Empty),
        ),
        (
            "invalid/not_base64.vpptoken",
            not_b64(Base64Problem::InvalidCharacter),
        ),
        (
            "invalid/binary_junk.vpptoken",
            not_b64(Base64Problem::Binary),
        ),
        (
            "invalid/half_written_zeros.vpptoken",
            not_b64(Base64Problem::Binary),
        ),
        ("invalid/utf16.vpptoken", not_b64(Base64Problem::Utf16)),
        (
            "invalid/truncated_base64.vpptoken",
            not_b64(Base64Problem::Truncated),
        ),
        (
            "invalid/truncated_json.vpptoken",
            not_json(
                JsonProblem::Truncated {
                    line: 1,
                    column: 126,
                },
                false,
            ),
        ),
        (
            "invalid/base64_of_text.vpptoken",
            not_json(JsonProblem::Syntax { line: 1, column: 1 }, false),
        ),
        (
            "invalid/base64_of_binary.vpptoken",
            not_json(JsonProblem::NotUtf8, false),
        ),
        (
            "invalid/raw_json_truncated.vpptoken",
            not_json(
                JsonProblem::Truncated {
                    line: 1,
                    column: 50,
                },
                true,
            ),
        ),
        (
            "invalid/json_array.vpptoken",
            Expect::Error(TokenError::NotObject {
                found: JsonKind::Array,
            }),
        ),
        (
            "invalid/json_string.vpptoken",
            Expect::Error(TokenError::NotObject {
                found: JsonKind::String,
            }),
        ),
        (
            "invalid/missing_exp_date.vpptoken",
            Expect::Error(TokenError::MissingExpDate),
        ),
        (
            "invalid/missing_token.vpptoken",
            Expect::Error(TokenError::MissingToken),
        ),
        (
            "invalid/exp_date_number.vpptoken",
            Expect::Error(TokenError::ExpDateNotString {
                found: JsonKind::Number,
            }),
        ),
        (
            "invalid/exp_date_null.vpptoken",
            Expect::Error(TokenError::ExpDateNotString {
                found: JsonKind::Null,
            }),
        ),
        (
            "invalid/token_not_string.vpptoken",
            Expect::Error(TokenError::TokenNotString {
                found: JsonKind::Object,
            }),
        ),
        (
            "invalid/impossible_date.vpptoken",
            Expect::Error(TokenError::ImpossibleDate {
                value: DateText::Shown("2026-02-30T00:00:00+0000".into()),
            }),
        ),
        (
            "invalid/unparseable_date.vpptoken",
            Expect::Error(TokenError::UnparseableDate {
                value: DateText::Shown("15/08/2033 18:13".into()),
            }),
        ),
        (
            "invalid/ade_server_token.vpptoken",
            Expect::Error(TokenError::AdeServerToken),
        ),
        (
            "invalid/pem_cert.vpptoken",
            Expect::Error(TokenError::Pem {
                kind: PemKind::Certificate,
            }),
        ),
        (
            "invalid/pem_key.vpptoken",
            Expect::Error(TokenError::Pem {
                kind: PemKind::PrivateKey,
            }),
        ),
    ]
}

#[test]
fn every_fixture_has_its_exact_outcome() {
    for (rel, expect) in table() {
        let bytes = fixture(rel);
        let (fingerprint, result) = parse_with_fingerprint(&bytes);
        assert_eq!(fingerprint, Fingerprint::of(&bytes), "{rel}");
        match (expect, result) {
            (
                Expect::Token {
                    org,
                    expires,
                    created,
                    variants,
                    bearer,
                    sample,
                },
                Ok(content),
            ) => {
                assert_eq!(content.org_name, org, "{rel}");
                assert_eq!(content.expires_at, utc(expires), "{rel}");
                assert_eq!(content.created_at, utc(created), "{rel}");
                assert_eq!(content.variants, variants, "{rel}");
                assert_eq!(content.fingerprint, fingerprint, "{rel}");
                assert_eq!(content.sample, sample, "{rel}");
                assert_eq!(is_sample(&content), sample, "{rel}");
                assert_eq!(content.verifiable_with_apple(), bearer, "{rel}");
                let (same, content_bearer) = parse_with_bearer(&bytes).expect("parses again");
                assert_eq!(same, content, "{rel}");
                let want_bearer = bearer.then(|| normalised(&bytes));
                assert_eq!(
                    content_bearer.as_ref().map(|b| b.expose().to_owned()),
                    want_bearer,
                    "{rel}"
                );
                if let Some(b) = &content_bearer {
                    let sha = hex::encode(Sha256::digest(b.expose().as_bytes()));
                    assert_eq!(content.fingerprint.as_str(), sha, "{rel}");
                }
            }
            (Expect::Error(want), Err(got)) => assert_eq!(got, want, "{rel}"),
            (Expect::Token { .. }, Err(e)) => panic!("{rel}: expected a token, got {e:?}"),
            (Expect::Error(want), Ok(c)) => panic!("{rel}: expected {want:?}, got {c:?}"),
        }
    }
}

#[test]
fn every_fixture_file_is_in_the_table() {
    let listed: Vec<String> = table().iter().map(|(rel, _)| rel.to_string()).collect();
    let mut found = Vec::new();
    for dir in ["valid", "invalid"] {
        for entry in std::fs::read_dir(fixtures().join(dir)).expect("fixture folder") {
            let name = entry.expect("fixture entry").file_name();
            found.push(format!("{dir}/{}", name.to_string_lossy()));
        }
    }
    found.sort();
    let mut listed_sorted = listed.clone();
    listed_sorted.sort();
    assert_eq!(found, listed_sorted);
}

#[test]
fn error_messages_are_human() {
    let cases = [
        (
            "invalid/impossible_date.vpptoken",
            "expDate \"2026-02-30T00:00:00+0000\" is not a valid date",
        ),
        (
            "invalid/ade_server_token.vpptoken",
            "file is an Automated Device Enrollment server token (S/MIME .p7m), \
             not an Apps and Books content token",
        ),
        (
            "invalid/pem_cert.vpptoken",
            "file is a PEM certificate (an APNs push certificate?), \
             not an Apps and Books content token",
        ),
        (
            "invalid/missing_token.vpptoken",
            "JSON object has no \"token\" key",
        ),
        (
            "invalid/exp_date_number.vpptoken",
            "\"expDate\" is a number, not a string",
        ),
        (
            "invalid/truncated_json.vpptoken",
            "decoded Base64 is not JSON: it ends early at line 1 column 126 \
             (truncated or half-written?)",
        ),
        (
            "invalid/raw_json_truncated.vpptoken",
            "file is not JSON: it ends early at line 1 column 50 (truncated or half-written?)",
        ),
        (
            "invalid/truncated_base64.vpptoken",
            "file is not Base64 text: its length or padding is wrong (truncated or half-written?)",
        ),
    ];
    for (rel, want) in cases {
        let err = parse(&fixture(rel)).expect_err(rel);
        assert_eq!(err.to_string(), want, "{rel}");
    }
}

#[test]
fn size_limit_is_inclusive() {
    let mut at_limit = fixture("valid/compact.vpptoken");
    at_limit.resize(MAX_TOKEN_FILE_BYTES, b' ');
    let content = parse(&at_limit).expect("a token padded to the limit");
    assert_eq!(content.org_name, "Compact Corp");
    assert_eq!(content.variants, vec![Variant::StraySpaces]);

    at_limit.push(b' ');
    assert_eq!(parse(&at_limit).unwrap_err(), TokenError::TooLarge);
    // The scanner's truncated read of a huge file still gets a fingerprint.
    let (fingerprint, result) = parse_with_fingerprint(&at_limit);
    assert_eq!(result.unwrap_err(), TokenError::TooLarge);
    assert_eq!(fingerprint, Fingerprint::of(&at_limit));
}

/// Runs `f` on a thread with a small stack, so unbounded recursion fails.
fn on_small_stack<T: Send + 'static>(f: impl FnOnce() -> T + Send + 'static) -> T {
    std::thread::Builder::new()
        .stack_size(256 * 1024)
        .spawn(f)
        .expect("spawn")
        .join()
        .expect("no stack overflow")
}

#[test]
fn deep_nesting_neither_overflows_nor_passes() {
    let depth = 20_000;
    let nested = |open: &str, close: &str| open.repeat(depth) + &close.repeat(depth);

    let balanced = STANDARD.encode(nested("[", "]"));
    let err = on_small_stack(move || parse(balanced.as_bytes()));
    assert_eq!(
        err.unwrap_err(),
        TokenError::NotObject {
            found: JsonKind::Array
        }
    );

    let unclosed = STANDARD.encode("[".repeat(depth));
    let err = on_small_stack(move || parse(unclosed.as_bytes()));
    assert_eq!(
        err.unwrap_err(),
        TokenError::NotJson {
            problem: JsonProblem::Truncated {
                line: 1,
                column: depth
            },
            raw: false
        }
    );

    // Deep values under keys the reader skips are walked without recursion.
    let extra = format!(
        r#"{{"token":"x","expDate":"2030-01-01T00:00:00Z","x":{}}}"#,
        nested("[", "]")
    );
    let ok = on_small_stack(move || parse(extra.as_bytes()));
    assert_eq!(
        ok.expect("deep extra key").variants,
        vec![
            Variant::ExtraKeys,
            Variant::OffsetZ,
            Variant::RawJson,
            Variant::NoOrgName
        ]
    );

    let exp = format!(r#"{{"token":"x","expDate":{}}}"#, nested("[", "]"));
    let err = on_small_stack(move || parse(exp.as_bytes()));
    assert_eq!(
        err.unwrap_err(),
        TokenError::ExpDateNotString {
            found: JsonKind::Array
        }
    );

    let objects = format!(
        r#"{{"expDate":"2030-01-01T00:00:00Z","token":{}null{}}}"#,
        r#"{"a":"#.repeat(depth / 5),
        "}".repeat(depth / 5)
    );
    let err = on_small_stack(move || parse(objects.as_bytes()));
    assert_eq!(
        err.unwrap_err(),
        TokenError::TokenNotString {
            found: JsonKind::Object
        }
    );
}

#[test]
fn rewrapped_copies_share_one_fingerprint() {
    let one_line = normalised(&fixture("valid/compact.vpptoken"));
    let wrap = |width: usize, eol: &str| -> String {
        let lines: Vec<&str> = one_line
            .as_bytes()
            .chunks(width)
            .map(|c| std::str::from_utf8(c).expect("ascii"))
            .collect();
        lines.join(eol) + eol
    };
    let copies = [
        one_line.clone(),
        wrap(76, "\n"),
        wrap(48, "\r\n"),
        format!("\u{FEFF}{}", wrap(64, "\n")),
        format!(" {} \t", one_line),
    ];
    let (first, first_bearer) = parse_with_bearer(one_line.as_bytes()).expect("compact");
    for copy in &copies {
        let (content, bearer) = parse_with_bearer(copy.as_bytes()).expect("copy");
        assert_eq!(content.fingerprint, first.fingerprint);
        assert_eq!(bearer, first_bearer);
        assert_eq!(Fingerprint::of(copy.as_bytes()), first.fingerprint);
    }
    let other = parse(&fixture("valid/trailing_newline.vpptoken")).expect("other");
    assert_ne!(other.fingerprint, first.fingerprint);
}

#[test]
fn fingerprint_forms() {
    let f = Fingerprint::of(b"");
    // SHA-256 of nothing.
    assert_eq!(
        f.as_str(),
        "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"
    );
    assert_eq!(f.short(), "e3b0c44298fc");
    assert_eq!(f.to_string(), "e3b0c44298fc");
    assert_eq!(Fingerprint::of(b"\xEF\xBB\xBF \r\n"), f);

    let upper = f.as_str().to_ascii_uppercase();
    assert_eq!(Fingerprint::from_hex(&upper), Some(f.clone()));
    assert_eq!(Fingerprint::from_hex(&f.as_str()[..63]), None);
    assert_eq!(Fingerprint::from_hex(&format!("{}0", f.as_str())), None);
    assert_eq!(Fingerprint::from_hex(&f.as_str().replace('e', "g")), None);
    // 64 bytes but not 64 ASCII hex digits.
    assert_eq!(
        Fingerprint::from_hex(&format!("é{}", &f.as_str()[2..])),
        None
    );

    let json = serde_json::to_string(&f).expect("serialise");
    assert_eq!(json, format!("\"{}\"", f.as_str()));
    assert_eq!(serde_json::from_str::<Fingerprint>(&json).expect("back"), f);
    assert!(serde_json::from_str::<Fingerprint>("\"abc\"").is_err());
}

#[test]
fn created_is_one_calendar_year_earlier_in_the_files_offset() {
    let cases = [
        // 29 February has no match a year earlier.
        ("2028-02-29T12:00:00+00:00", "2027-02-28T12:00:00Z"),
        // Computed in the file's offset: the local date is 29 February,
        // though in UTC it is still the 28th (a UTC computation would
        // give 2027-02-28T23:00Z).
        ("2028-02-29T01:00:00+02:00", "2027-02-27T23:00:00Z"),
        // Local 28 February, UTC 29 February (UTC would give 2027-02-28T00:30Z).
        ("2028-02-28T23:30:00-01:00", "2027-03-01T00:30:00Z"),
        ("2029-02-28T00:00:00+00:00", "2028-02-28T00:00:00Z"),
        ("2029-03-01T00:00:00+00:00", "2028-03-01T00:00:00Z"),
        // Year boundaries, both directions of offset.
        ("2027-01-01T03:00:00+05:00", "2025-12-31T22:00:00Z"),
        ("2026-12-31T22:00:00-05:00", "2026-01-01T03:00:00Z"),
        ("2027-01-01T00:00:00+00:00", "2026-01-01T00:00:00Z"),
        ("2030-06-15T09:00:00+05:30", "2029-06-15T03:30:00Z"),
        ("2014-08-15T18:13:52-07:00", "2013-08-16T01:13:52Z"),
    ];
    for (expires, created) in cases {
        assert_eq!(
            created_from_expiry(fixed(expires)),
            utc(created),
            "{expires}"
        );
    }
}

#[test]
fn created_clamps_at_chronos_limit_instead_of_panicking() {
    let min = DateTime::<Utc>::MIN_UTC.fixed_offset();
    assert_eq!(created_from_expiry(min), DateTime::<Utc>::MIN_UTC);
}

#[test]
fn sample_tokens_read_back_as_samples() {
    let expires = utc("2030-05-17T10:20:30.999Z");
    let org = "Acme \"Schulen\" / Köln";
    let text = sample_token(org, expires);

    assert!(text.ends_with('\n'));
    let lines: Vec<&str> = text.lines().collect();
    assert!(lines.len() > 2, "wrapped over several lines");
    let (last, full) = lines.split_last().expect("lines");
    assert!(full.iter().all(|l| l.len() == 76));
    assert!(!last.is_empty() && last.len() <= 76);

    let content = parse(text.as_bytes()).expect("sample parses");
    assert_eq!(content.org_name, org);
    assert_eq!(content.expires_at, utc("2030-05-17T10:20:30Z"));
    assert_eq!(content.created_at, utc("2029-05-17T10:20:30Z"));
    assert_eq!(content.variants, vec![Variant::Wrapped]);
    assert!(is_sample(&content));
    let bearer = parse_with_bearer(text.as_bytes()).expect("sample parses").1;
    assert_eq!(
        bearer.as_ref().map(|b| b.expose().to_owned()),
        Some(normalised(text.as_bytes()))
    );

    let json = STANDARD
        .decode(normalised(text.as_bytes()))
        .expect("base64");
    let json: serde_json::Value = serde_json::from_slice(&json).expect("json");
    assert_eq!(json["expDate"], "2030-05-17T10:20:30+0000");
    let keys: Vec<&str> = json
        .as_object()
        .expect("object")
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3);

    // Random inner token: two samples are two different tokens.
    let again = parse(sample_token(org, expires).as_bytes()).expect("again");
    assert_ne!(again.fingerprint, content.fingerprint);
}

#[test]
fn only_the_marker_makes_a_sample() {
    for rel in ["valid/compact.vpptoken", "valid/canary.vpptoken"] {
        assert!(!parse(&fixture(rel)).expect(rel).sample, "{rel}");
    }
    let short = r#"{"token":"dG9rZW53YXRjaC1zYW1wbGU=","expDate":"2030-01-01T00:00:00Z"}"#;
    assert!(!parse(short.as_bytes()).expect("short").sample);
}

#[test]
fn variant_names_match_serde_and_warnings_are_the_lenient_forms() {
    use Variant::*;
    let all = [
        Bom,
        CrLf,
        Wrapped,
        StraySpaces,
        PrettyJson,
        ExtraKeys,
        OffsetZ,
        OffsetWithColon,
        FractionalSeconds,
        RawJson,
        NoOrgName,
    ];
    for v in all {
        let json = serde_json::to_string(&v).expect("serialise");
        assert_eq!(json, format!("\"{}\"", v.name()));
        assert!(!v.describe().is_empty());
    }
    let warnings: Vec<Variant> = all.into_iter().filter(|v| v.is_warning()).collect();
    assert_eq!(
        warnings,
        vec![OffsetWithColon, FractionalSeconds, RawJson, NoOrgName]
    );
}

#[test]
fn org_name_of_the_wrong_type_reads_as_empty_with_a_warning() {
    for org in ["null", "42", "[\"a\"]", "{}"] {
        let json =
            format!(r#"{{"token":"x","expDate":"2030-01-01T00:00:00+0000","orgName":{org}}}"#);
        let content = parse(STANDARD.encode(json).as_bytes()).expect(org);
        assert_eq!(content.org_name, "", "{org}");
        assert_eq!(content.variants, vec![Variant::NoOrgName], "{org}");
    }
}

#[test]
fn duplicate_keys_take_the_last_value() {
    let json = r#"{"token":"x","expDate":"2030-01-01T00:00:00Z","expDate":"2031-01-01T00:00:00Z"}"#;
    let content = parse(json.as_bytes()).expect("duplicate");
    assert_eq!(content.expires_at, utc("2031-01-01T00:00:00Z"));
}

#[test]
fn trailing_data_after_the_json_is_rejected() {
    let json = r#"{"token":"x","expDate":"2030-01-01T00:00:00Z"} {}"#;
    assert_eq!(
        parse(json.as_bytes()).unwrap_err(),
        TokenError::NotJson {
            problem: JsonProblem::Syntax {
                line: 1,
                column: 48
            },
            raw: true
        }
    );
}

#[test]
fn find_agrees_with_a_naive_search() {
    let naive = |h: &[u8], n: &[u8]| h.windows(n.len()).position(|w| w == n);
    let hay = b"aab-----BEGIN -----BEGIN CERT xx-----BEGIN";
    for needle in [
        &b"-----BEGIN "[..],
        b"-----BEGIN",
        b"a",
        b"aab",
        b"BEGIN",
        b"xx-----BEGIN",
        b"nope",
        b"CERTX",
    ] {
        assert_eq!(find(hay, needle), naive(hay, needle), "{needle:?}");
    }
    assert_eq!(find(b"ab", b"abc"), None);
    assert_eq!(find(b"", b"a"), None);
    assert_eq!(find(b"abc", b""), None);
}

#[test]
fn missing_padding_is_truncation() {
    let text = normalised(&fixture("valid/compact.vpptoken"));
    let unpadded = text.trim_end_matches('=');
    assert_ne!(unpadded.len(), text.len(), "fixture must end in padding");
    assert_eq!(
        parse(unpadded.as_bytes()).unwrap_err(),
        TokenError::NotBase64 {
            problem: Base64Problem::Truncated
        }
    );
}

/// Texts that must never appear in any output: the canary, the file's
/// Base64 (any 16-character stretch of it) and the inner token's Base64.
fn assert_no_leak(output: &str, secrets: &[&str], context: &str) {
    for secret in secrets {
        let chars: Vec<char> = secret.chars().collect();
        for window in chars.windows(16.min(chars.len())) {
            let needle: String = window.iter().collect();
            assert!(
                !output.contains(&needle),
                "{context}: output leaks {needle:?}: {output}"
            );
        }
    }
}

#[test]
fn canary_never_reaches_errors_or_debug() {
    const CANARY: &str = "CANARY-tokenwatch-5b2f9e71-do-not-leak";
    let canary_b64 = STANDARD.encode(CANARY);
    let file = fixture("valid/canary.vpptoken");
    let bearer = normalised(&file);
    let secrets = [CANARY, canary_b64.as_str(), bearer.as_str()];

    let (content, content_bearer) = parse_with_bearer(&file).expect("canary token");
    assert_eq!(
        content_bearer.as_ref().map(Secret::expose),
        Some(bearer.as_str())
    );
    assert_no_leak(
        &format!("{content_bearer:?}"),
        &secrets,
        "Debug of the bearer",
    );
    assert_no_leak(&format!("{content:?}"), &secrets, "Debug of Credential");

    // One input per rejection class, each carrying the canary.
    let doc = |rest: &str| format!(r#"{{"token":"{CANARY}"{rest}}}"#);
    let b64 = |s: &str| STANDARD.encode(s);
    let mut inputs: Vec<(&str, Vec<u8>)> = vec![
        ("missing expDate", b64(&doc(r#","orgName":"x""#)).into()),
        ("expDate not string", b64(&doc(r#","expDate":7"#)).into()),
        (
            "impossible date",
            b64(&doc(r#","expDate":"2026-02-30T00:00:00+0000""#)).into(),
        ),
        ("unparseable date", b64(&doc(r#","expDate":"soon""#)).into()),
        (
            "missing token",
            b64(&format!(
                r#"{{"x":"{CANARY}","expDate":"2030-01-01T00:00:00Z"}}"#
            ))
            .into(),
        ),
        (
            "token not string",
            b64(&format!(
                r#"{{"token":["{CANARY}"],"expDate":"2030-01-01T00:00:00Z"}}"#
            ))
            .into(),
        ),
        ("not object", b64(&format!(r#"["{CANARY}"]"#)).into()),
        ("not json", b64(&format!("{CANARY} and more")).into()),
        ("bad escape", b64(&doc(r#","orgName":"\q""#)).into()),
        (
            "raw json",
            format!(r#"{{"token":"{CANARY}","expDate":7}}"#).into(),
        ),
        (
            "canary as date",
            b64(&format!(r#"{{"token":"x","expDate":"{CANARY}"}}"#)).into(),
        ),
        ("not base64", format!("{CANARY}!").into()),
        (
            "too large",
            [bearer.as_bytes(), &[b' '; MAX_TOKEN_FILE_BYTES]].concat(),
        ),
        (
            "pem",
            format!("-----BEGIN CERTIFICATE-----\n{bearer}\n").into(),
        ),
        ("ade", format!("MIME-Version: 1.0\n\n{bearer}\n").into()),
    ];
    // Every truncation of the real file: half-written downloads.
    for cut in 0..file.len() {
        inputs.push(("truncated", file[..cut].to_vec()));
    }
    for (what, input) in &inputs {
        match parse(input) {
            Err(err) => {
                assert_no_leak(&err.to_string(), &secrets, what);
                assert_no_leak(&format!("{err:?}"), &secrets, what);
            }
            Ok(content) => assert_no_leak(&format!("{content:?}"), &secrets, what),
        }
    }
    // A secret pasted into expDate is not echoed.
    let err = parse(inputs[10].1.as_slice()).unwrap_err();
    assert_eq!(
        err,
        TokenError::UnparseableDate {
            value: DateText::Hidden {
                chars: CANARY.len()
            }
        }
    );
}

#[test]
fn mangled_fixtures_never_panic() {
    // One flipped bit per position, cycling through bits that turn
    // Base64 into other Base64, into punctuation, and into non-ASCII.
    let mut seen_errors = 0;
    for (rel, _) in table().iter().filter(|(rel, _)| rel.starts_with("valid/")) {
        let original = fixture(rel);
        for i in 0..original.len() {
            let mut bytes = original.clone();
            bytes[i] ^= [0x01u8, 0x20, 0x80][i % 3];
            let (fingerprint, result) = parse_with_fingerprint(&bytes);
            assert_eq!(fingerprint, Fingerprint::of(&bytes), "{rel} byte {i}");
            seen_errors += usize::from(result.is_err());
        }
    }
    assert!(seen_errors > 0);
}

#[test]
fn secret_forms_are_the_bearer_the_inner_token_and_the_json_around_it() {
    let json = r#"{"token":"ab\/cd+ef\/0123456789","expDate":"2030-11-08T22:33:22+0000","orgName":"Acme Corporation \/ Berlin","note":"extra-key-value-kept"}"#;
    let bearer = Secret::new(STANDARD.encode(json));
    let forms: Vec<String> = secret_forms(&bearer)
        .iter()
        .map(|s| s.expose().to_owned())
        .collect();
    assert_eq!(
        forms,
        [
            bearer.expose(),
            "ab/cd+ef/0123456789",
            r#"{"token":"ab\/cd+ef\/0123456789","expDate":"#,
            r#","note":"extra-key-value-kept"}"#,
        ]
    );
    // Not a token: only the text itself is known to be secret.
    let odd = Secret::new("not base64 at all!");
    assert_eq!(secret_forms(&odd).len(), 1);
    // Base64 of something that is not JSON: the decoded text is secret too.
    let text = Secret::new(STANDARD.encode("opaque secret bytes, no JSON here"));
    assert_eq!(secret_forms(&text).len(), 2);
}
