//! Topic aliases (MQTT 5.0 §3.3.2.3.4), resolved per connection and per direction so that an
//! alias never lets a PUBLISH skip a check.

use crate::error::Error;

/// One direction's alias table: alias → topic, bounded by the Topic Alias Maximum the
/// receiver announced.
#[derive(Debug, Default, Clone)]
pub struct TopicAliases {
    maximum: u16,
    slots: Vec<Option<Box<str>>>,
}

impl TopicAliases {
    /// A table accepting aliases 1..=`maximum` (0 disables aliases).
    pub fn new(maximum: u16) -> TopicAliases {
        TopicAliases {
            maximum,
            slots: Vec::new(),
        }
    }

    /// The maximum in force.
    pub fn maximum(&self) -> u16 {
        self.maximum
    }

    /// Changes the maximum (when the CONNECT or CONNACK that sets it is seen). Mappings
    /// above the new maximum are forgotten.
    pub fn set_maximum(&mut self, maximum: u16) {
        self.maximum = maximum;
        self.slots.truncate(usize::from(maximum));
    }

    /// Resolves the topic of a PUBLISH: records `topic` under `alias` when both are given,
    /// looks the alias up when the topic is empty. Returns the effective topic.
    ///
    /// Errors: an alias of 0 or above the maximum (0x94 Topic Alias Invalid), or an empty
    /// topic with an alias that has no mapping (0x82 Protocol Error).
    pub fn resolve<'t>(&'t mut self, topic: &'t str, alias: Option<u16>) -> Result<&'t str, Error> {
        let Some(alias) = alias else {
            return Ok(topic);
        };
        if alias == 0 || alias > self.maximum {
            return Err(Error::TopicAliasInvalid(alias));
        }
        let i = usize::from(alias - 1);
        if topic.is_empty() {
            return match self.slots.get(i) {
                Some(Some(t)) => Ok(t),
                _ => Err(Error::UnknownTopicAlias(alias)),
            };
        }
        if self.slots.len() <= i {
            self.slots.resize(i + 1, None);
        }
        if self.slots[i].as_deref() != Some(topic) {
            self.slots[i] = Some(topic.into());
        }
        Ok(topic)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_then_use() {
        let mut a = TopicAliases::new(10);
        assert_eq!(a.resolve("a/b", Some(3)), Ok("a/b"));
        assert_eq!(a.resolve("", Some(3)), Ok("a/b"));
        // Re-pointing an alias: the new topic is what counts.
        assert_eq!(a.resolve("secret", Some(3)), Ok("secret"));
        assert_eq!(a.resolve("", Some(3)), Ok("secret"));
        assert_eq!(a.resolve("x", None), Ok("x"));
    }

    #[test]
    fn invalid_aliases() {
        let mut a = TopicAliases::new(2);
        assert_eq!(a.resolve("a", Some(3)), Err(Error::TopicAliasInvalid(3)));
        assert_eq!(a.resolve("a", Some(0)), Err(Error::TopicAliasInvalid(0)));
        assert_eq!(a.resolve("", Some(1)), Err(Error::UnknownTopicAlias(1)));
        let mut none = TopicAliases::new(0);
        assert_eq!(none.resolve("a", Some(1)), Err(Error::TopicAliasInvalid(1)));
    }
}
