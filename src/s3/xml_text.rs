//! Text inside S3's XML documents, escaped as S3 writes it. Apart from xml.rs so that the error
//! documents (error.rs, which xml.rs itself depends on) can use it too.

/// Escapes text for an XML element or attribute.
pub fn escape(s: &str) -> String {
    control_references(quick_xml::escape::escape(s).into_owned())
}

/// Writes the control characters a key may hold (S3 keys are any UTF-8) as character
/// references, as S3 does: `\x01` becomes `&#x1;`. XML 1.0 has no character for most of them,
/// so strict parsers refuse such a document (clients ask for `encoding-type=url` then), and a
/// raw carriage return would reach a parser as a line feed, another key.
pub fn control_references(text: String) -> String {
    let is_control = |c: char| c == '\r' || (c < ' ' && c != '\t' && c != '\n');
    if !text.contains(is_control) {
        return text;
    }
    let mut out = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            out.push_str(&format!("&#x{:X};", c as u32));
        } else {
            out.push(c);
        }
    }
    out
}
