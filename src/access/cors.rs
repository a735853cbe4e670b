//! Bucket CORS: the configuration document (parsed and checked as S3 checks it, written back
//! as S3 writes it), and the rule matching that answers browser preflights and decorates
//! cross-origin responses. Pure: strings in, header names and values out; the S3 layer reads
//! and stores the configuration and turns refusals into S3 errors.

use serde::{Deserialize, Serialize};

/// S3 refuses configurations with more rules than this.
pub const MAX_RULES: usize = 100;
/// The longest rule ID S3 accepts.
const MAX_ID_CHARS: usize = 255;

/// What S3 puts in `Vary` on every CORS answer: the answer depends on all three.
pub const VARY: &str = "Origin, Access-Control-Request-Headers, Access-Control-Request-Method";

/// The methods a rule may allow; S3 knows no others for CORS.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CorsMethod {
    #[serde(rename = "GET")]
    Get,
    #[serde(rename = "PUT")]
    Put,
    #[serde(rename = "POST")]
    Post,
    #[serde(rename = "DELETE")]
    Delete,
    #[serde(rename = "HEAD")]
    Head,
}

impl CorsMethod {
    /// Exactly as S3 spells them: upper case, nothing around.
    pub fn parse(s: &str) -> Option<CorsMethod> {
        Some(match s {
            "GET" => CorsMethod::Get,
            "PUT" => CorsMethod::Put,
            "POST" => CorsMethod::Post,
            "DELETE" => CorsMethod::Delete,
            "HEAD" => CorsMethod::Head,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            CorsMethod::Get => "GET",
            CorsMethod::Put => "PUT",
            CorsMethod::Post => "POST",
            CorsMethod::Delete => "DELETE",
            CorsMethod::Head => "HEAD",
        }
    }
}

/// One `CORSRule`. Values are kept as the client wrote them (S3 neither trims nor folds case).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsRule {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    pub allowed_origins: Vec<String>,
    pub allowed_methods: Vec<CorsMethod>,
    #[serde(default)]
    pub allowed_headers: Vec<String>,
    #[serde(default)]
    pub expose_headers: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_age_seconds: Option<u32>,
}

/// A bucket's CORS configuration: its rules in order (the first that matches wins).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct CorsConfiguration {
    pub rules: Vec<CorsRule>,
}

/// Why a configuration document was refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ConfigError {
    /// Not the schema: S3's MalformedXML.
    Malformed,
    /// Well-formed but not allowed: S3's InvalidRequest with this message.
    Invalid(String),
}

/// Why a preflight is refused.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PreflightRefusal {
    /// No (or an empty) `Origin`: 400 BadRequest.
    NoOrigin,
    /// `Access-Control-Request-Method` missing (`None`) or not a CORS method: 400 BadRequest.
    BadMethod(Option<String>),
    /// The bucket has no CORS configuration: 403 AccessForbidden.
    NotEnabled,
    /// No rule allows the origin, method and headers: 403 AccessForbidden.
    NotAllowed,
}

impl PreflightRefusal {
    /// S3's message for the refusal.
    pub fn message(&self) -> String {
        match self {
            PreflightRefusal::NoOrigin => {
                "Insufficient information. Origin request header needed.".into()
            }
            PreflightRefusal::BadMethod(m) => format!(
                "Invalid Access-Control-Request-Method: {}",
                m.as_deref().unwrap_or("null")
            ),
            PreflightRefusal::NotEnabled => "CORSResponse: CORS is not enabled for this bucket.".into(),
            PreflightRefusal::NotAllowed => "CORSResponse: This CORS request is not allowed. This is usually because the evalution of Origin, request method / Access-Control-Request-Method or Access-Control-Request-Headers are not whitelisted by the resource's CORS spec.".into(),
        }
    }
}

/// Response headers, in the order S3 writes them.
pub type CorsHeaders = Vec<(&'static str, String)>;

impl CorsConfiguration {
    /// The stored form: canonical JSON of the parsed rules.
    pub fn to_json(&self) -> String {
        serde_json::to_string(self).unwrap_or_default()
    }

    pub fn from_json(text: &str) -> Option<CorsConfiguration> {
        serde_json::from_str(text).ok()
    }

    /// Parses and checks a PutBucketCors document. Structural faults (MalformedXML) are found
    /// over the whole document before any value is judged (InvalidRequest), as S3 does.
    pub fn parse(body: &[u8]) -> Result<CorsConfiguration, ConfigError> {
        let raw = parse_document(body)?;
        let mut rules = Vec::with_capacity(raw.len());
        for rule in raw {
            rules.push(rule.validate()?);
        }
        Ok(CorsConfiguration { rules })
    }

    /// The GetBucketCors document, elements in S3's order.
    pub fn to_xml(&self) -> String {
        let esc = |s: &str| quick_xml::escape::escape(s).into_owned();
        let mut out = String::from(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">",
        );
        for rule in &self.rules {
            out.push_str("<CORSRule>");
            if let Some(id) = &rule.id {
                out.push_str(&format!("<ID>{}</ID>", esc(id)));
            }
            for m in &rule.allowed_methods {
                out.push_str(&format!("<AllowedMethod>{}</AllowedMethod>", m.as_str()));
            }
            for o in &rule.allowed_origins {
                out.push_str(&format!("<AllowedOrigin>{}</AllowedOrigin>", esc(o)));
            }
            for h in &rule.allowed_headers {
                out.push_str(&format!("<AllowedHeader>{}</AllowedHeader>", esc(h)));
            }
            if let Some(age) = rule.max_age_seconds {
                out.push_str(&format!("<MaxAgeSeconds>{age}</MaxAgeSeconds>"));
            }
            for h in &rule.expose_headers {
                out.push_str(&format!("<ExposeHeader>{}</ExposeHeader>", esc(h)));
            }
            out.push_str("</CORSRule>");
        }
        out.push_str("</CORSConfiguration>");
        out
    }

    /// The first rule allowing `origin` and `method`, with the `Access-Control-Allow-Origin`
    /// it earns: `*` when the rule allows every origin literally, else the origin itself.
    fn find(
        &self,
        origin: &str,
        method: CorsMethod,
        headers_ok: impl Fn(&CorsRule) -> bool,
    ) -> Option<(&CorsRule, String)> {
        self.rules.iter().find_map(|rule| {
            let origin_ok = rule
                .allowed_origins
                .iter()
                .any(|p| wildcard_match(p, origin));
            if !origin_ok || !rule.allowed_methods.contains(&method) || !headers_ok(rule) {
                return None;
            }
            let allow = if rule.allowed_origins.iter().any(|p| p == "*") {
                "*".to_string()
            } else {
                origin.to_string()
            };
            Some((rule, allow))
        })
    }
}

/// Answers a preflight (`OPTIONS` with `Origin` and `Access-Control-Request-Method`):
/// the headers of the first matching rule, or why not. `config` is `None` when the bucket has
/// no CORS configuration.
pub fn preflight(
    config: Option<&CorsConfiguration>,
    origin: Option<&str>,
    method: Option<&str>,
    request_headers: Option<&str>,
) -> Result<CorsHeaders, PreflightRefusal> {
    let origin = origin
        .filter(|o| !o.is_empty())
        .ok_or(PreflightRefusal::NoOrigin)?;
    let method = match method {
        None => return Err(PreflightRefusal::BadMethod(None)),
        Some(m) => {
            CorsMethod::parse(m).ok_or_else(|| PreflightRefusal::BadMethod(Some(m.into())))?
        }
    };
    let config = config.ok_or(PreflightRefusal::NotEnabled)?;
    // Browsers list the headers comma-separated; S3 compares and echoes them in lower case.
    let requested: Vec<String> = request_headers
        .unwrap_or("")
        .split(',')
        .map(|h| h.trim().to_ascii_lowercase())
        .filter(|h| !h.is_empty())
        .collect();
    let headers_ok = |rule: &CorsRule| {
        requested.iter().all(|h| {
            rule.allowed_headers
                .iter()
                .any(|p| wildcard_match(&p.to_ascii_lowercase(), h))
        })
    };
    let (rule, allow_origin) = config
        .find(origin, method, headers_ok)
        .ok_or(PreflightRefusal::NotAllowed)?;
    let allow_headers = (!requested.is_empty()).then(|| requested.join(", "));
    Ok(rule_headers(rule, allow_origin, allow_headers))
}

/// The CORS headers of an ordinary (non-preflight) request from `origin` with `method`, if a
/// rule allows it. Request headers play no part here, as in S3.
pub fn actual(config: &CorsConfiguration, origin: &str, method: &str) -> Option<CorsHeaders> {
    let method = CorsMethod::parse(method)?;
    if origin.is_empty() {
        return None;
    }
    let (rule, allow_origin) = config.find(origin, method, |_| true)?;
    Some(rule_headers(rule, allow_origin, None))
}

fn rule_headers(
    rule: &CorsRule,
    allow_origin: String,
    allow_headers: Option<String>,
) -> CorsHeaders {
    // Credentials are allowed only to a named origin: a browser refuses them with `*`.
    let credentials = allow_origin != "*";
    let mut out = vec![("access-control-allow-origin", allow_origin)];
    let methods: Vec<&str> = rule.allowed_methods.iter().map(|m| m.as_str()).collect();
    out.push(("access-control-allow-methods", methods.join(", ")));
    if let Some(h) = allow_headers {
        out.push(("access-control-allow-headers", h));
    }
    if !rule.expose_headers.is_empty() {
        out.push((
            "access-control-expose-headers",
            rule.expose_headers.join(", "),
        ));
    }
    if let Some(age) = rule.max_age_seconds {
        out.push(("access-control-max-age", age.to_string()));
    }
    if credentials {
        out.push(("access-control-allow-credentials", "true".into()));
    }
    out.push(("vary", VARY.into()));
    out
}

/// `pattern` with at most one `*` (any run of characters, possibly empty) against `value`;
/// the text around the wildcard is compared exactly and may not overlap.
fn wildcard_match(pattern: &str, value: &str) -> bool {
    match pattern.split_once('*') {
        None => pattern == value,
        Some((head, tail)) => {
            value.len() >= head.len() + tail.len()
                && value.starts_with(head)
                && value.ends_with(tail)
        }
    }
}

/// A rule as written, before its values are judged.
#[derive(Default)]
struct RawRule {
    id: Option<String>,
    origins: Vec<String>,
    methods: Vec<String>,
    allowed_headers: Vec<String>,
    expose_headers: Vec<String>,
    max_age: Option<u32>,
}

impl RawRule {
    /// S3's checks, in its order: methods, then origins, then allowed headers, then exposed.
    fn validate(self) -> Result<CorsRule, ConfigError> {
        let mut methods = Vec::with_capacity(self.methods.len());
        for m in &self.methods {
            methods.push(CorsMethod::parse(m).ok_or_else(|| {
                ConfigError::Invalid(format!(
                    "Found unsupported HTTP method in CORS config. Unsupported method is {m}"
                ))
            })?);
        }
        for (what, values) in [
            ("AllowedOrigin", &self.origins),
            ("AllowedHeader", &self.allowed_headers),
        ] {
            if let Some(v) = values.iter().find(|v| v.matches('*').count() > 1) {
                return Err(ConfigError::Invalid(format!(
                    "{what} \"{v}\" can not have more than one wildcard."
                )));
            }
        }
        if let Some(v) = self.expose_headers.iter().find(|v| v.contains('*')) {
            return Err(ConfigError::Invalid(format!(
                "ExposeHeader \"{v}\" contains wildcard. We currently do not support wildcard for ExposeHeader."
            )));
        }
        Ok(CorsRule {
            id: self.id,
            allowed_origins: self.origins,
            allowed_methods: methods,
            allowed_headers: self.allowed_headers,
            expose_headers: self.expose_headers,
            max_age_seconds: self.max_age,
        })
    }

    fn set(&mut self, field: &str, value: String) -> Result<(), ConfigError> {
        match field {
            "ID" => {
                if self.id.is_some() || value.chars().count() > MAX_ID_CHARS {
                    return Err(ConfigError::Malformed);
                }
                self.id = Some(value);
            }
            "AllowedOrigin" => self.origins.push(value),
            "AllowedMethod" => self.methods.push(value),
            "AllowedHeader" => self.allowed_headers.push(value),
            "ExposeHeader" => self.expose_headers.push(value),
            "MaxAgeSeconds" => {
                // A plain non-negative 32-bit signed integer: digits only.
                let age = (!value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()))
                    .then(|| value.parse::<u32>().ok())
                    .flatten()
                    .filter(|a| *a <= i32::MAX as u32)
                    .ok_or(ConfigError::Malformed)?;
                if self.max_age.replace(age).is_some() {
                    return Err(ConfigError::Malformed);
                }
            }
            _ => return Err(ConfigError::Malformed),
        }
        Ok(())
    }
}

const FIELDS: [&str; 6] = [
    "ID",
    "AllowedOrigin",
    "AllowedMethod",
    "AllowedHeader",
    "ExposeHeader",
    "MaxAgeSeconds",
];

/// The document's structure: `CORSConfiguration` holding 1 to 100 `CORSRule`s, each with only
/// the known fields as text, at least one origin and one method. Values keep their whitespace
/// (quick-xml's serde layer would trim them), so this walks the events by hand.
fn parse_document(body: &[u8]) -> Result<Vec<RawRule>, ConfigError> {
    use quick_xml::events::Event;
    let text = std::str::from_utf8(body).map_err(|_| ConfigError::Malformed)?;
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let mut reader = quick_xml::Reader::from_str(text);
    let mut rules: Vec<RawRule> = Vec::new();
    // Local names from the root down to the current element.
    let mut path: Vec<String> = Vec::new();
    let mut value = String::new();
    let mut seen_root = false;
    loop {
        match reader.read_event().map_err(|_| ConfigError::Malformed)? {
            Event::Start(e) => {
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match (path.len(), name.as_str()) {
                    (0, "CORSConfiguration") if !seen_root => seen_root = true,
                    (1, "CORSRule") => {
                        if rules.len() == MAX_RULES {
                            return Err(ConfigError::Malformed);
                        }
                        rules.push(RawRule::default());
                    }
                    (2, field) if FIELDS.contains(&field) => value.clear(),
                    _ => return Err(ConfigError::Malformed),
                }
                path.push(name);
            }
            Event::Empty(e) => {
                // `<ID/>` is an empty value; an empty root or rule lacks what it must hold.
                let name = String::from_utf8_lossy(e.local_name().as_ref()).into_owned();
                match (path.len(), rules.last_mut()) {
                    (2, Some(rule)) if FIELDS.contains(&name.as_str()) => {
                        rule.set(&name, String::new())?
                    }
                    _ => return Err(ConfigError::Malformed),
                }
            }
            Event::Text(t) => {
                let t = t.unescape().map_err(|_| ConfigError::Malformed)?;
                if path.len() == 3 {
                    value.push_str(&t);
                } else if !t.trim().is_empty() {
                    return Err(ConfigError::Malformed);
                }
            }
            Event::CData(c) => {
                if path.len() != 3 {
                    return Err(ConfigError::Malformed);
                }
                value.push_str(std::str::from_utf8(&c).map_err(|_| ConfigError::Malformed)?);
            }
            Event::End(_) => {
                let name = path.pop().unwrap_or_default();
                match path.len() {
                    2 => match rules.last_mut() {
                        Some(rule) => rule.set(&name, std::mem::take(&mut value))?,
                        None => return Err(ConfigError::Malformed),
                    },
                    1 => {
                        let complete = rules
                            .last()
                            .is_some_and(|r| !r.origins.is_empty() && !r.methods.is_empty());
                        if !complete {
                            return Err(ConfigError::Malformed);
                        }
                    }
                    _ => {}
                }
            }
            Event::DocType(_) => return Err(ConfigError::Malformed),
            Event::Eof => break,
            Event::Decl(_) | Event::Comment(_) | Event::PI(_) => {}
        }
    }
    if !seen_root || !path.is_empty() || rules.is_empty() {
        return Err(ConfigError::Malformed);
    }
    Ok(rules)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn doc(rules: &[&str]) -> String {
        let body: String = rules
            .iter()
            .map(|r| format!("<CORSRule>{r}</CORSRule>"))
            .collect();
        format!("<CORSConfiguration xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">{body}</CORSConfiguration>")
    }

    const MIN: &str =
        "<AllowedOrigin>https://example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod>";

    fn parse(rules: &[&str]) -> Result<CorsConfiguration, ConfigError> {
        CorsConfiguration::parse(doc(rules).as_bytes())
    }

    #[test]
    fn parses_every_field_and_writes_it_back_in_s3_order() {
        let c = parse(&["<ID>r&amp;1</ID><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedOrigin> x </AllowedOrigin><AllowedMethod>PUT</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedHeader>x-amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>0042</MaxAgeSeconds>", "<AllowedOrigin><![CDATA[*]]></AllowedOrigin><AllowedMethod>GET</AllowedMethod><!-- c --><ID/>"]).unwrap();
        let r = &c.rules[0];
        assert_eq!(r.id.as_deref(), Some("r&1"));
        assert_eq!(r.allowed_origins, ["https://*.example.com", " x "]);
        assert_eq!(r.allowed_methods, [CorsMethod::Put, CorsMethod::Head]);
        assert_eq!(r.allowed_headers, ["x-amz-*"]);
        assert_eq!(r.expose_headers, ["ETag"]);
        assert_eq!(r.max_age_seconds, Some(42));
        assert_eq!(c.rules[1].allowed_origins, ["*"]);
        assert_eq!(c.rules[1].id.as_deref(), Some(""));
        let xml = c.to_xml();
        assert!(xml.contains("<CORSRule><ID>r&amp;1</ID><AllowedMethod>PUT</AllowedMethod><AllowedMethod>HEAD</AllowedMethod><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedOrigin> x </AllowedOrigin><AllowedHeader>x-amz-*</AllowedHeader><MaxAgeSeconds>42</MaxAgeSeconds><ExposeHeader>ETag</ExposeHeader></CORSRule>"), "{xml}");
        assert_eq!(CorsConfiguration::parse(xml.as_bytes()).unwrap(), c);
        assert_eq!(CorsConfiguration::from_json(&c.to_json()).unwrap(), c);
        let prefixed = format!(
            "\u{feff}<?xml version=\"1.0\"?><s3:CORSConfiguration xmlns:s3=\"x\"><s3:CORSRule>{}</s3:CORSRule></s3:CORSConfiguration>",
            MIN.replace('<', "<s3:").replace("<s3:/", "</s3:")
        );
        assert_eq!(
            CorsConfiguration::parse(prefixed.as_bytes())
                .unwrap()
                .rules
                .len(),
            1
        );
    }

    #[test]
    fn structural_faults_are_malformed() {
        let hundred: Vec<&str> = vec![MIN; 100];
        assert_eq!(parse(&hundred).unwrap().rules.len(), 100);
        let too_many: Vec<&str> = vec![MIN; 101];
        let bad_docs = [
            String::new(),
            "not xml".into(),
            "<CORSConfiguration/>".into(),
            doc(&[]),
            doc(&too_many),
            doc(&[""]),
            doc(&["<AllowedMethod>GET</AllowedMethod>"]),
            doc(&["<AllowedOrigin>*</AllowedOrigin>"]),
            doc(&[&format!("{MIN}<AllowedHeaders>*</AllowedHeaders>")]),
            doc(&[&format!("{MIN}<Status/>")]),
            doc(&[&format!("{MIN}text")]),
            doc(&[&format!("{MIN}<MaxAgeSeconds>-1</MaxAgeSeconds>")]),
            doc(&[&format!("{MIN}<MaxAgeSeconds>2147483648</MaxAgeSeconds>")]),
            doc(&[&format!("{MIN}<MaxAgeSeconds></MaxAgeSeconds>")]),
            doc(&[&format!("{MIN}<MaxAgeSeconds>1</MaxAgeSeconds><MaxAgeSeconds>1</MaxAgeSeconds>")]),
            doc(&[&format!("{MIN}<ID>a</ID><ID>b</ID>")]),
            doc(&[&format!("{MIN}<ID>{}</ID>", "a".repeat(256))]),
            doc(&["<AllowedOrigin><O>*</O></AllowedOrigin><AllowedMethod>GET</AllowedMethod>"]),
            format!("<CORSConfiguration>{MIN}</CORSConfiguration>"),
            format!("<CORSRules><CORSRule>{MIN}</CORSRule></CORSRules>"),
            format!("<CORSConfiguration><CORSRule>{MIN}</CORSConfiguration>"),
            format!("<!DOCTYPE x><CORSConfiguration><CORSRule>{MIN}</CORSRule></CORSConfiguration>"),
            format!("<CORSConfiguration><CORSRule>{MIN}</CORSRule></CORSConfiguration><CORSConfiguration/>"),
            // Malformed wins over an invalid value elsewhere.
            doc(&["<AllowedOrigin>*</AllowedOrigin><AllowedMethod>PATCH</AllowedMethod>", "<AllowedMethod>GET</AllowedMethod>"]),
        ];
        for bad in bad_docs {
            assert_eq!(
                CorsConfiguration::parse(bad.as_bytes()),
                Err(ConfigError::Malformed),
                "{bad}"
            );
        }
        assert_eq!(
            CorsConfiguration::parse(b"<\xff>"),
            Err(ConfigError::Malformed)
        );
    }

    #[test]
    fn invalid_values_are_named_as_s3_names_them() {
        let invalid = |rules: &[&str]| match parse(rules) {
            Err(ConfigError::Invalid(m)) => m,
            other => panic!("{other:?}"),
        };
        for m in ["PATCH", "get", "OPTIONS", " GET", "*", ""] {
            let rule =
                format!("<AllowedOrigin>*</AllowedOrigin><AllowedMethod>{m}</AllowedMethod>");
            assert_eq!(
                invalid(&[MIN, &rule]),
                format!("Found unsupported HTTP method in CORS config. Unsupported method is {m}")
            );
        }
        assert_eq!(
            invalid(&["<AllowedOrigin>https://*.example.*</AllowedOrigin><AllowedMethod>GET</AllowedMethod>"]),
            "AllowedOrigin \"https://*.example.*\" can not have more than one wildcard."
        );
        assert_eq!(
            invalid(&[&format!("{MIN}<AllowedHeader>x-*-*</AllowedHeader>")]),
            "AllowedHeader \"x-*-*\" can not have more than one wildcard."
        );
        assert_eq!(
            invalid(&[&format!("{MIN}<ExposeHeader>x-*</ExposeHeader>")]),
            "ExposeHeader \"x-*\" contains wildcard. We currently do not support wildcard for ExposeHeader."
        );
        // The method is judged before the origin.
        assert!(invalid(&[
            "<AllowedOrigin>**</AllowedOrigin><AllowedMethod>TRACE</AllowedMethod>"
        ])
        .contains("TRACE"));
    }

    fn config() -> CorsConfiguration {
        parse(&[
            "<AllowedOrigin>https://example.com</AllowedOrigin><AllowedOrigin>https://*.example.com</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>PUT</AllowedMethod><AllowedHeader>Content-Type</AllowedHeader><AllowedHeader>X-Amz-*</AllowedHeader><ExposeHeader>ETag</ExposeHeader><MaxAgeSeconds>3000</MaxAgeSeconds>",
            "<AllowedOrigin>*</AllowedOrigin><AllowedMethod>GET</AllowedMethod><AllowedMethod>HEAD</AllowedMethod>",
        ])
        .unwrap()
    }

    fn header<'a>(h: &'a CorsHeaders, name: &str) -> Option<&'a str> {
        h.iter().find(|(n, _)| *n == name).map(|(_, v)| v.as_str())
    }

    #[test]
    fn preflight_takes_the_first_matching_rule() {
        let c = config();
        let h = preflight(
            Some(&c),
            Some("https://app.example.com"),
            Some("PUT"),
            Some("content-type, X-AMZ-Date ,"),
        )
        .unwrap();
        let names: Vec<&str> = h.iter().map(|(n, _)| *n).collect();
        assert_eq!(
            names,
            [
                "access-control-allow-origin",
                "access-control-allow-methods",
                "access-control-allow-headers",
                "access-control-expose-headers",
                "access-control-max-age",
                "access-control-allow-credentials",
                "vary"
            ]
        );
        assert_eq!(
            header(&h, "access-control-allow-origin"),
            Some("https://app.example.com")
        );
        assert_eq!(header(&h, "access-control-allow-methods"), Some("GET, PUT"));
        assert_eq!(
            header(&h, "access-control-allow-headers"),
            Some("content-type, x-amz-date")
        );
        // Another origin falls to the public rule: `*`, no credentials.
        let h = preflight(Some(&c), Some("https://other.org"), Some("GET"), None).unwrap();
        assert_eq!(header(&h, "access-control-allow-origin"), Some("*"));
        assert_eq!(header(&h, "access-control-allow-credentials"), None);
        assert_eq!(
            header(&h, "access-control-allow-methods"),
            Some("GET, HEAD")
        );
        // Origins compare case-sensitively outside the wildcard.
        assert_eq!(
            preflight(Some(&c), Some("https://EXAMPLE.com"), Some("PUT"), None),
            Err(PreflightRefusal::NotAllowed)
        );
        assert_eq!(
            preflight(
                Some(&c),
                Some("https://example.com"),
                Some("PUT"),
                Some("authorization")
            ),
            Err(PreflightRefusal::NotAllowed)
        );
        assert_eq!(
            preflight(
                Some(&c),
                Some("https://other.org"),
                Some("GET"),
                Some("x-amz-date")
            ),
            Err(PreflightRefusal::NotAllowed)
        );
        assert_eq!(
            preflight(Some(&c), Some("https://example.com"), Some("DELETE"), None),
            Err(PreflightRefusal::NotAllowed)
        );
        assert_eq!(
            preflight(None, Some("https://example.com"), Some("GET"), None),
            Err(PreflightRefusal::NotEnabled)
        );
        assert_eq!(
            preflight(Some(&c), Some(""), Some("GET"), None),
            Err(PreflightRefusal::NoOrigin)
        );
        assert_eq!(
            preflight(None, None, Some("GET"), None),
            Err(PreflightRefusal::NoOrigin)
        );
        let e = preflight(Some(&c), Some("https://example.com"), None, None).unwrap_err();
        assert_eq!(e.message(), "Invalid Access-Control-Request-Method: null");
        let e = preflight(None, Some("https://example.com"), Some("get"), None).unwrap_err();
        assert_eq!(e.message(), "Invalid Access-Control-Request-Method: get");
    }

    #[test]
    fn actual_requests_ignore_request_headers() {
        let c = config();
        let h = actual(&c, "https://example.com", "PUT").unwrap();
        assert_eq!(header(&h, "access-control-expose-headers"), Some("ETag"));
        assert_eq!(header(&h, "access-control-allow-credentials"), Some("true"));
        assert_eq!(header(&h, "vary"), Some(VARY));
        assert!(actual(&c, "https://example.com", "DELETE").is_none());
        assert!(actual(&c, "https://example.com", "OPTIONS").is_none());
        assert!(actual(&c, "", "GET").is_none());
        assert_eq!(
            header(
                &actual(&c, "null", "HEAD").unwrap(),
                "access-control-allow-origin"
            ),
            Some("*")
        );
    }

    #[test]
    fn wildcards() {
        assert!(wildcard_match("*", ""));
        assert!(wildcard_match(
            "https://*.example.com",
            "https://a.b.example.com"
        ));
        assert!(!wildcard_match(
            "https://*.example.com",
            "https://example.com"
        ));
        assert!(wildcard_match(
            "http://localhost:*",
            "http://localhost:3000"
        ));
        assert!(!wildcard_match("a*a", "a"));
        assert!(wildcard_match("a*a", "aa"));
        assert!(!wildcard_match(
            "https://example.com",
            "https://example.com.evil"
        ));
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(2000))]

        /// Any arrangement of the document's pieces is parsed or refused, never a panic, and
        /// whatever is taken survives its own GetBucketCors document and the stored JSON.
        #[test]
        fn parser_is_total(pieces in proptest::collection::vec(proptest::sample::select(&[
            "<CORSConfiguration>", "</CORSConfiguration>", "<CORSRule>", "</CORSRule>",
            "<AllowedOrigin>", "</AllowedOrigin>", "<AllowedMethod>", "</AllowedMethod>",
            "<AllowedHeader>", "</AllowedHeader>", "<ExposeHeader>", "</ExposeHeader>",
            "<MaxAgeSeconds>", "</MaxAgeSeconds>", "<ID>", "</ID>", "<ID/>", "GET", "*", "7",
            "&amp;", "&bad;", "<![CDATA[x]]>", "<!--c-->", "<!DOCTYPE x>", " ", "\u{e9}",
        ][..]), 0..40)) {
            let doc = pieces.concat();
            if let Ok(c) = CorsConfiguration::parse(doc.as_bytes()) {
                proptest::prop_assert_eq!(CorsConfiguration::parse(c.to_xml().as_bytes()), Ok(c.clone()));
                proptest::prop_assert_eq!(CorsConfiguration::from_json(&c.to_json()), Some(c));
            }
        }
    }
}
