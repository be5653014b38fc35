//! Topic names, topic filters, shared subscriptions and matching (MQTT 5.0 §4.7–4.8).

use core::fmt;

/// Why a topic name or filter is invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TopicError {
    /// Zero length (MQTT-4.7.3-1).
    Empty,
    /// `+` or `#` in a topic name (MQTT-4.7.0-1).
    WildcardInName,
    /// `#` not alone in the last level (MQTT-4.7.1-1).
    MisplacedMultiLevelWildcard,
    /// `+` not alone in its level (MQTT-4.7.1-2).
    MisplacedSingleLevelWildcard,
    /// `$share/` with an empty share name or one holding `+` or `#` (MQTT-4.8.2-1, -2).
    InvalidShareName,
    /// `$share/<group>` with no filter after it.
    MissingSharedFilter,
}

impl fmt::Display for TopicError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            TopicError::Empty => "empty",
            TopicError::WildcardInName => "wildcard in a topic name",
            TopicError::MisplacedMultiLevelWildcard => "'#' is not alone in the last level",
            TopicError::MisplacedSingleLevelWildcard => "'+' is not alone in its level",
            TopicError::InvalidShareName => "invalid share name",
            TopicError::MissingSharedFilter => "shared subscription without a filter",
        })
    }
}

impl core::error::Error for TopicError {}

/// The prefix of a shared subscription.
pub const SHARE_PREFIX: &str = "$share/";

/// Checks a topic name as used in PUBLISH: not empty, no wildcards.
pub fn validate_topic_name(name: &str) -> Result<(), TopicError> {
    if name.is_empty() {
        return Err(TopicError::Empty);
    }
    if name.bytes().any(|b| b == b'+' || b == b'#') {
        return Err(TopicError::WildcardInName);
    }
    Ok(())
}

/// Checks a topic filter as used in SUBSCRIBE and UNSUBSCRIBE, `$share/` form included.
pub fn validate_topic_filter(filter: &str) -> Result<(), TopicError> {
    let (_, filter) = split_shared(filter)?;
    validate_plain_filter(filter)
}

fn validate_plain_filter(filter: &str) -> Result<(), TopicError> {
    if filter.is_empty() {
        return Err(TopicError::Empty);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MisplacedMultiLevelWildcard);
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::MisplacedSingleLevelWildcard);
        }
    }
    Ok(())
}

/// Splits `$share/<group>/<filter>` into the group and the filter. A filter without the
/// prefix comes back with no group. Only the share name is checked here.
pub fn split_shared(filter: &str) -> Result<(Option<&str>, &str), TopicError> {
    let Some(rest) = filter.strip_prefix(SHARE_PREFIX) else {
        return Ok((None, filter));
    };
    let Some((group, inner)) = rest.split_once('/') else {
        return Err(if rest.is_empty() || rest.contains(['+', '#']) {
            TopicError::InvalidShareName
        } else {
            TopicError::MissingSharedFilter
        });
    };
    if group.is_empty() || group.contains(['+', '#']) {
        return Err(TopicError::InvalidShareName);
    }
    if inner.is_empty() {
        return Err(TopicError::MissingSharedFilter);
    }
    Ok((Some(group), inner))
}

/// Whether `filter` (already valid, without any `$share/` prefix) matches the topic name
/// `topic`.
///
/// `+` matches exactly one level, possibly empty; `#` matches its parent level and every level
/// below; a filter starting with a wildcard does not match a topic starting with `$`
/// (MQTT-4.7.2-1).
pub fn matches(filter: &str, topic: &str) -> bool {
    let filter = filter.as_bytes();
    let topic = topic.as_bytes();
    if topic.first() == Some(&b'$') && matches!(filter.first(), Some(b'+' | b'#')) {
        return false;
    }
    let (mut f, mut t) = (0, 0);
    loop {
        // At the start of a filter level and a topic level.
        match filter.get(f) {
            Some(b'#') => return true,
            Some(b'+') => {
                // Skip one topic level.
                while t < topic.len() && topic[t] != b'/' {
                    t += 1;
                }
                f += 1;
            }
            _ => {
                // Literal level: compare up to the next separator.
                while f < filter.len() && filter[f] != b'/' {
                    if t >= topic.len() || topic[t] != filter[f] {
                        return false;
                    }
                    f += 1;
                    t += 1;
                }
                if t < topic.len() && topic[t] != b'/' {
                    return false;
                }
            }
        }
        // Both sides are now at a separator or at their end.
        match (f < filter.len(), t < topic.len()) {
            (false, false) => return true,
            (true, false) => {
                // "a/#" matches "a": only a trailing "/#" may remain.
                return &filter[f..] == b"/#";
            }
            (false, true) => return false,
            (true, true) => {
                f += 1;
                t += 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn spec_matching_examples() {
        // MQTT 5.0 §4.7.1.2 and §4.7.1.3.
        for (filter, topic, expect) in [
            ("sport/tennis/player1/#", "sport/tennis/player1", true),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/ranking",
                true,
            ),
            (
                "sport/tennis/player1/#",
                "sport/tennis/player1/score/wimbledon",
                true,
            ),
            ("sport/#", "sport", true),
            ("#", "sport/tennis", true),
            ("sport/tennis/+", "sport/tennis/player1", true),
            ("sport/tennis/+", "sport/tennis/player1/ranking", false),
            ("sport/+", "sport", false),
            ("sport/+", "sport/", true),
            ("+/+", "/finance", true),
            ("/+", "/finance", true),
            ("+", "/finance", false),
            ("#", "$SYS/x", false),
            ("+/monitor/Clients", "$SYS/monitor/Clients", false),
            ("$SYS/#", "$SYS/monitor/Clients", true),
            ("$SYS/monitor/+", "$SYS/monitor/Clients", true),
            ("a/b", "a/b", true),
            ("a/b", "a/bc", false),
            ("a/bc", "a/b", false),
            ("a/b", "a/b/", false),
            ("a//b", "a//b", true),
            ("a/+/b", "a//b", true),
            ("+", "", true),
            ("a/#", "a/", true),
        ] {
            assert_eq!(matches(filter, topic), expect, "{filter} vs {topic}");
        }
    }

    #[test]
    fn filters() {
        for ok in ["#", "+", "a/#", "a/+/b", "+/+", "/", "$share/g/a/#", "a//b"] {
            assert_eq!(validate_topic_filter(ok), Ok(()), "{ok}");
        }
        for (bad, err) in [
            ("", TopicError::Empty),
            ("a/#/b", TopicError::MisplacedMultiLevelWildcard),
            ("a#", TopicError::MisplacedMultiLevelWildcard),
            ("a/b+", TopicError::MisplacedSingleLevelWildcard),
            ("$share//a", TopicError::InvalidShareName),
            ("$share/g+/a", TopicError::InvalidShareName),
            ("$share/g", TopicError::MissingSharedFilter),
            ("$share/g/", TopicError::MissingSharedFilter),
            ("$share/g/a#", TopicError::MisplacedMultiLevelWildcard),
        ] {
            assert_eq!(validate_topic_filter(bad), Err(err), "{bad}");
        }
    }

    #[test]
    fn names() {
        assert_eq!(validate_topic_name("a/b"), Ok(()));
        assert_eq!(validate_topic_name("$SYS/x"), Ok(()));
        assert_eq!(validate_topic_name(""), Err(TopicError::Empty));
        assert_eq!(validate_topic_name("a/+"), Err(TopicError::WildcardInName));
        assert_eq!(validate_topic_name("#"), Err(TopicError::WildcardInName));
    }

    #[test]
    fn shared() {
        assert_eq!(split_shared("$share/g/a/b"), Ok((Some("g"), "a/b")));
        assert_eq!(split_shared("a/b"), Ok((None, "a/b")));
        assert_eq!(split_shared("$shared/g/a"), Ok((None, "$shared/g/a")));
    }
}
