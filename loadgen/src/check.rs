//! Response checks (k6's `check`, Gatling's `check`): which statuses count
//! as success, and optionally a substring the body must hold or a JSON
//! field it must have. A response that fails a check is counted in the
//! `check` error class, never as ok.
//!
//! Checks are parsed and compiled once, before the run. Judging a
//! response costs a bit test when only the status is checked; the body is
//! kept (up to [`MAX_CHECKED_BODY`]) only for requests whose checks read it.

use crate::stats::Class;

/// The most body bytes a check reads. A longer body is checked on its
/// first [`MAX_CHECKED_BODY`] bytes: a substring found there passes; a JSON
/// check fails (the document is incomplete), so nothing passes unread.
pub const MAX_CHECKED_BODY: usize = 4 << 20;

/// A set of status codes 100-599, as a bit set.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StatusSet([u64; 10]);

impl StatusSet {
    /// Parses `2xx`, `200`, `200-204`, or a comma-separated list of them.
    pub fn parse(text: &str) -> Result<StatusSet, String> {
        let mut set = StatusSet([0; 10]);
        let code = |s: &str| -> Result<u16, String> {
            match s.parse::<u16>() {
                Ok(c) if (100..=599).contains(&c) => Ok(c),
                _ => Err(format!(
                    "`{s}` is not a status code (write 100-599, a range like 200-204, or a class like 2xx)"
                )),
            }
        };
        for part in text.split(',').map(str::trim) {
            if part.is_empty() {
                return Err(format!(
                    "`{text}` has an empty entry (write e.g. `2xx,304`)"
                ));
            }
            let (lo, hi) = if let Some(class) = part.strip_suffix(['x', 'X']) {
                let digit = class
                    .strip_suffix(['x', 'X'])
                    .filter(|d| d.len() == 1)
                    .and_then(|d| d.parse::<u16>().ok())
                    .filter(|d| (1..=5).contains(d))
                    .ok_or_else(|| format!("`{part}` is not a status class (write 1xx-5xx)"))?;
                (digit * 100, digit * 100 + 99)
            } else if let Some((a, b)) = part.split_once('-') {
                let (a, b) = (code(a.trim())?, code(b.trim())?);
                if a > b {
                    return Err(format!("`{part}`: the range runs backwards"));
                }
                (a, b)
            } else {
                let c = code(part)?;
                (c, c)
            };
            for c in lo..=hi {
                set.0[usize::from(c) / 64] |= 1 << (c % 64);
            }
        }
        Ok(set)
    }

    /// Whether `code` is in the set.
    pub fn contains(&self, code: u16) -> bool {
        let c = usize::from(code);
        c < 640 && self.0[c / 64] & (1 << (c % 64)) != 0
    }
}

/// One step of a JSON path: an object key or an array index.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

/// A JSON field the body must have, optionally with a given value.
#[derive(Debug, Clone, PartialEq)]
pub struct JsonCheck {
    /// As written (`data.items.0.id`).
    pub path: String,
    steps: Vec<Step>,
    /// The value it must equal; any value when `None`.
    pub equals: Option<serde_json::Value>,
}

impl JsonCheck {
    /// `path` is dot-separated keys, numbers for array indices
    /// (`items.0.id`); a leading `$.` (JSONPath's root) is allowed.
    pub fn new(path: &str, equals: Option<serde_json::Value>) -> Result<JsonCheck, String> {
        let p = path.trim();
        let p = p.strip_prefix("$.").unwrap_or(p);
        if p.is_empty() || p.split('.').any(str::is_empty) {
            return Err(format!(
                "`{path}` is not a JSON path (write keys joined by dots, numbers for array items: `data.items.0.id`)"
            ));
        }
        let steps = p
            .split('.')
            .map(|s| match s.parse::<usize>() {
                Ok(i) => Step::Index(i),
                Err(_) => Step::Key(s.to_string()),
            })
            .collect();
        Ok(JsonCheck {
            path: path.trim().to_string(),
            steps,
            equals,
        })
    }

    /// `PATH` or `PATH=VALUE` (the flag's form): VALUE is read as JSON
    /// when it parses as JSON (`7`, `true`, `"x"`), as a string otherwise.
    pub fn parse_flag(text: &str) -> Result<JsonCheck, String> {
        match text.split_once('=') {
            Some((path, value)) => {
                let v = serde_json::from_str(value.trim())
                    .unwrap_or_else(|_| serde_json::Value::String(value.trim().to_string()));
                JsonCheck::new(path, Some(v))
            }
            None => JsonCheck::new(text, None),
        }
    }

    fn holds(&self, body: &[u8]) -> bool {
        let Ok(doc) = serde_json::from_slice::<serde_json::Value>(body) else {
            return false;
        };
        let mut at = &doc;
        for s in &self.steps {
            let next = match (s, at) {
                (Step::Key(k), serde_json::Value::Object(m)) => m.get(k),
                (Step::Index(i), serde_json::Value::Array(a)) => a.get(*i),
                // A number as an object key (`{"0": …}`).
                (Step::Index(i), serde_json::Value::Object(m)) => m.get(&i.to_string()),
                _ => None,
            };
            match next {
                Some(v) => at = v,
                None => return false,
            }
        }
        self.equals.as_ref().is_none_or(|want| want == at)
    }
}

/// What one kind of request's responses must satisfy.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Check {
    /// The statuses that count as success, as written and compiled;
    /// `None`: 1xx-3xx (4xx and 5xx are their own error classes).
    pub status: Option<(String, StatusSet)>,
    /// A substring the body must contain.
    pub body_contains: Option<String>,
    /// A JSON field the body must have.
    pub json: Option<JsonCheck>,
}

/// The checks of one response: which passed, and the class it lands in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verdict {
    /// The response's class: `Ok`, `Check`, or the status's own error class.
    pub class: Class,
    /// Per check in [`Check::names`] order: true when it failed.
    pub failed: [bool; 3],
}

impl Check {
    /// True when no check is set beyond the default status rule.
    pub fn is_default(&self) -> bool {
        self.status.is_none() && self.body_contains.is_none() && self.json.is_none()
    }

    /// Whether judging needs the response body.
    pub fn needs_body(&self) -> bool {
        self.body_contains.is_some() || self.json.is_some()
    }

    /// The checks set, described as outputs show them (`status in 2xx`,
    /// `body contains "ok"`, `json data.id == 7`), each with its slot in
    /// [`Verdict::failed`].
    pub fn names(&self) -> Vec<(usize, String)> {
        let mut v = Vec::new();
        if let Some((text, _)) = &self.status {
            v.push((0, format!("status in {text}")));
        }
        if let Some(s) = &self.body_contains {
            v.push((1, format!("body contains {s:?}")));
        }
        if let Some(j) = &self.json {
            v.push((
                2,
                match &j.equals {
                    Some(want) => format!("json {} == {want}", j.path),
                    None => format!("json {} exists", j.path),
                },
            ));
        }
        v
    }

    /// Judges one response: its status, and its body when a check reads it
    /// (`truncated`: the body was longer than [`MAX_CHECKED_BODY`]).
    pub fn judge(&self, status: u16, body: &[u8], truncated: bool) -> Verdict {
        let mut failed = [false; 3];
        let status_ok = match &self.status {
            Some((_, set)) => {
                failed[0] = !set.contains(status);
                !failed[0]
            }
            None => status < 400,
        };
        if let Some(s) = &self.body_contains {
            failed[1] = !contains(body, s.as_bytes());
        }
        if let Some(j) = &self.json {
            failed[2] = truncated || !j.holds(body);
        }
        let class = if !status_ok && status >= 400 {
            // A 4xx or 5xx keeps its own class: it says more than `check`.
            Class::from_status(status)
        } else if failed.iter().any(|f| *f) {
            Class::Check
        } else {
            Class::Ok
        };
        Verdict { class, failed }
    }
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_sets() {
        let s = StatusSet::parse("2xx, 304,404-405").unwrap();
        for c in [200, 250, 299, 304, 404, 405] {
            assert!(s.contains(c), "{c}");
        }
        for c in [199, 300, 403, 406, 500, 0, 700] {
            assert!(!s.contains(c), "{c}");
        }
        for bad in [
            "", "2x", "6xx", "abc", "99", "600", "300-200", "200,", "2xxx",
        ] {
            assert!(StatusSet::parse(bad).is_err(), "{bad}");
        }
    }

    fn check(status: Option<&str>, body: Option<&str>, json: Option<&str>) -> Check {
        Check {
            status: status.map(|s| (s.to_string(), StatusSet::parse(s).unwrap())),
            body_contains: body.map(str::to_string),
            json: json.map(|j| JsonCheck::parse_flag(j).unwrap()),
        }
    }

    #[test]
    fn the_default_is_1xx_to_3xx() {
        let c = Check::default();
        assert!(c.is_default() && !c.needs_body() && c.names().is_empty());
        assert_eq!(c.judge(200, b"", false).class, Class::Ok);
        assert_eq!(c.judge(302, b"", false).class, Class::Ok);
        assert_eq!(c.judge(404, b"", false).class, Class::Http4xx);
        assert_eq!(c.judge(503, b"", false).class, Class::Http5xx);
    }

    #[test]
    fn an_unexpected_status_is_a_check_failure_unless_it_is_an_error() {
        let c = check(Some("201"), None, None);
        let v = c.judge(200, b"", false);
        assert_eq!((v.class, v.failed), (Class::Check, [true, false, false]));
        assert_eq!(c.judge(201, b"", false).class, Class::Ok);
        // A 5xx keeps its class, and still counts as a failed status check.
        let v = c.judge(500, b"", false);
        assert_eq!((v.class, v.failed[0]), (Class::Http5xx, true));
        // An expected 404 is a success.
        assert_eq!(
            check(Some("404"), None, None).judge(404, b"", false).class,
            Class::Ok
        );
    }

    #[test]
    fn bodies_and_json_fields() {
        let c = check(None, Some("\"ok\""), Some("data.items.1.id=7"));
        assert!(c.needs_body());
        let good = br#"{"status":"ok","data":{"items":[{"id":1},{"id":7}]}}"#;
        assert_eq!(c.judge(200, good, false).class, Class::Ok);
        // Truncated JSON never passes.
        assert_eq!(c.judge(200, good, true).failed, [false, false, true]);
        let wrong = br#"{"status":"ok","data":{"items":[{"id":1},{"id":8}]}}"#;
        assert_eq!(c.judge(200, wrong, false).failed, [false, false, true]);
        let v = c.judge(200, b"<html>oops</html>", false);
        assert_eq!((v.class, v.failed), (Class::Check, [false, true, true]));
        let exists = check(None, None, Some("$.data.items"));
        assert_eq!(exists.judge(200, good, false).class, Class::Ok);
        assert_eq!(exists.judge(200, b"{}", false).class, Class::Check);
        assert_eq!(
            JsonCheck::parse_flag("name=alice").unwrap().equals,
            Some(serde_json::json!("alice"))
        );
        assert_eq!(
            JsonCheck::parse_flag("n=7").unwrap().equals,
            Some(serde_json::json!(7))
        );
        assert!(JsonCheck::new("a..b", None).is_err());
        assert!(JsonCheck::new("", None).is_err());
        assert_eq!(
            c.names(),
            [
                (1, "body contains \"\\\"ok\\\"\"".to_string()),
                (2, "json data.items.1.id == 7".to_string())
            ]
        );
    }
}
