//! `RegexRouter`: renames a record's topic when the whole topic matches a regex.

use std::sync::Arc;

use regex::Regex;
use wasmconnect_sdk::config::ConfigIssue;
use wasmconnect_sdk::prelude::*;

use crate::util::{done, required_string};
use crate::{Part, Smt};

/// `RegexRouter`: `regex` must match the whole topic; the topic becomes `replacement`, in
/// which `$1` names a group as in Java.
#[derive(Debug)]
pub struct RegexRouter {
    regex: Regex,
    /// The replacement in the regex crate's syntax.
    replacement: String,
    /// The last topic routed and where it went: the records of a batch mostly share a topic.
    last: Option<(Arc<str>, Arc<str>)>,
}

/// Java's `Matcher.appendReplacement` syntax to the regex crate's: `$n` takes as many
/// digits as still name a group, `${name}` stays, and a backslash escapes the next character.
pub fn java_replacement(java: &str, groups: usize) -> Result<String, String> {
    let mut out = String::new();
    let mut chars = java.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\\' => match chars.next() {
                Some('$') => out.push_str("$$"),
                Some(other) => out.push(other),
                None => return Err("character to be escaped is missing".into()),
            },
            '$' => {
                if chars.peek() == Some(&'{') {
                    let name: String = chars.by_ref().skip(1).take_while(|c| *c != '}').collect();
                    out.push_str(&format!("${{{name}}}"));
                    continue;
                }
                let mut number = match chars.next().and_then(|d| d.to_digit(10)) {
                    Some(d) => d as usize,
                    None => return Err("Illegal group reference".into()),
                };
                while let Some(d) = chars.peek().and_then(|d| d.to_digit(10)) {
                    let longer = number * 10 + d as usize;
                    if longer >= groups {
                        break;
                    }
                    number = longer;
                    chars.next();
                }
                if number >= groups {
                    return Err(format!("No group {number}"));
                }
                out.push_str(&format!("${{{number}}}"));
            }
            c => out.push(c),
        }
    }
    Ok(out)
}

impl RegexRouter {
    pub fn build(config: &Config, _part: Part) -> Result<Box<dyn Smt>, Vec<ConfigIssue>> {
        let mut issues = Vec::new();
        let pattern = required_string(config, "regex", &mut issues);
        let replacement = config.get("replacement").map(str::to_owned);
        if replacement.is_none() {
            issues.push(ConfigIssue::new(
                "replacement",
                "Missing required configuration \"replacement\" which has no default value.",
            ));
        }
        if !issues.is_empty() {
            return Err(issues);
        }
        let regex = Regex::new(&format!("^(?:{pattern})$")).map_err(|e| {
            vec![ConfigIssue::new(
                "regex",
                format!("Invalid value {pattern} for configuration regex: {e}"),
            )]
        })?;
        let java = replacement.unwrap_or_default();
        let replacement = java_replacement(&java, regex.captures_len()).map_err(|e| {
            vec![ConfigIssue::new(
                "replacement",
                format!("Invalid value {java} for configuration replacement: {e}"),
            )]
        })?;
        done(
            Box::new(RegexRouter {
                regex,
                replacement,
                last: None,
            }) as Box<dyn Smt>,
            Vec::new(),
        )
    }
}

impl Smt for RegexRouter {
    fn apply(&mut self, mut record: Record) -> Outcome {
        if let Some((from, to)) = &self.last
            && (Arc::ptr_eq(from, &record.topic) || **from == *record.topic)
        {
            record.topic = to.clone();
            return Outcome::Keep(record);
        }
        let routed: Arc<str> = if self.regex.is_match(&record.topic) {
            self.regex
                .replace(&record.topic, self.replacement.as_str())
                .into()
        } else {
            record.topic.clone()
        };
        self.last = Some((record.topic.clone(), routed.clone()));
        record.topic = routed;
        Outcome::Keep(record)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn java_group_references_become_the_regex_crates() {
        assert_eq!(java_replacement("$1", 2).as_deref(), Ok("${1}"));
        // Java reads "$10" as group 1 then '0' when there is no group 10.
        assert_eq!(java_replacement("$10", 2).as_deref(), Ok("${1}0"));
        assert_eq!(java_replacement("$10", 11).as_deref(), Ok("${10}"));
        assert_eq!(java_replacement("a\\$b", 1).as_deref(), Ok("a$$b"));
        assert_eq!(java_replacement("${x}-y", 2).as_deref(), Ok("${x}-y"));
        assert!(java_replacement("$2", 2).is_err());
    }
}
