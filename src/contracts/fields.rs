//! Shapes the caller contracts share: a list sent either as one string or as an array. (The base
//! URL of their links is the edge's, `edge::base_url`.)

use serde::Deserialize;

/// A list a caller may send as an array or as one comma- or newline-separated string (what
/// Spinnaker's SpEL and ServiceNow's scripts produce). Blank items, and SpEL that failed to
/// resolve (left as literal `${…}` text), are absent.
#[derive(Debug, Default, Deserialize)]
#[serde(untagged)]
pub(crate) enum StringList {
    #[default]
    None,
    One(String),
    Many(Vec<String>),
}

impl StringList {
    pub(crate) fn items(&self) -> Vec<String> {
        let raw: Vec<&str> = match self {
            StringList::None => Vec::new(),
            StringList::One(s) => s.split([',', '\n']).collect(),
            StringList::Many(v) => v.iter().map(String::as_str).collect(),
        };
        raw.into_iter()
            .map(str::trim)
            .filter(|s| !s.is_empty() && !s.starts_with("${"))
            .map(str::to_string)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists_come_as_arrays_or_separated_strings() {
        let one = StringList::One("a, b\nc,,${trigger.x}".into());
        assert_eq!(one.items(), ["a", "b", "c"]);
        let many = StringList::Many(vec![" a ".into(), String::new()]);
        assert_eq!(many.items(), ["a"]);
        assert!(StringList::None.items().is_empty());
    }
}
