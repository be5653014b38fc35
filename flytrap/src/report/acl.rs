//! Topics and their members as the contract's events tell them: the contract keeps no list
//! (one storage slot per (topic, address) is all that authorisation needs), so `flytrap topic
//! list`, `topic show` and the web page list from `TopicCreated` and `AclChanged`, replayed in
//! chain order by the [`Reader`](super::Reader).

use std::collections::{BTreeSet, HashMap};

use flytrap_chain::{Action, Address, B256, Change};

/// One topic: its name and owner (from its creation events) and its current members.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topic {
    /// `topic_id(name)`.
    pub id: B256,
    /// The registered string.
    pub name: String,
    /// Its owner (`AclChanged(created).target`; zero until that event is seen).
    pub owner: Address,
    /// Block of its creation.
    pub created_block: u64,
    /// Block of its last `updated` change (countries, fees, sensitive flag), or of its
    /// creation: metadata read from the contract before that block is stale.
    pub changed_block: u64,
    /// Current publishers.
    pub publishers: BTreeSet<Address>,
    /// Current subscribers.
    pub subscribers: BTreeSet<Address>,
}

impl Topic {
    /// The members holding `action`.
    pub fn members(&self, action: Action) -> &BTreeSet<Address> {
        match action {
            Action::Publish => &self.publishers,
            Action::Subscribe => &self.subscribers,
        }
    }
}

/// Every topic, in creation order, with a lookup by id.
#[derive(Debug, Clone, Default)]
pub struct Acl {
    topics: Vec<Topic>,
    by_id: HashMap<B256, usize>,
}

impl Acl {
    /// Topics in creation order.
    pub fn topics(&self) -> &[Topic] {
        &self.topics
    }

    /// A topic by id.
    pub fn get(&self, id: &B256) -> Option<&Topic> {
        self.by_id.get(id).map(|&i| &self.topics[i])
    }

    /// Number of topics.
    pub fn len(&self) -> usize {
        self.topics.len()
    }

    /// No topic at all.
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty()
    }

    /// A `TopicCreated` in block `block`.
    pub fn created(&mut self, id: B256, name: String, block: u64) {
        if self.by_id.contains_key(&id) {
            return; // a replay of a block already applied
        }
        self.by_id.insert(id, self.topics.len());
        self.topics.push(Topic {
            id,
            name,
            owner: Address::ZERO,
            created_block: block,
            changed_block: block,
            publishers: BTreeSet::new(),
            subscribers: BTreeSet::new(),
        });
    }

    /// An `AclChanged` in block `block` (events of unknown topics are ignored).
    pub fn changed(
        &mut self,
        id: &B256,
        target: Address,
        action: Option<Action>,
        change: Change,
        block: u64,
    ) {
        let Some(&i) = self.by_id.get(id) else {
            return;
        };
        let t = &mut self.topics[i];
        fn set(t: &mut Topic, a: Action) -> &mut BTreeSet<Address> {
            match a {
                Action::Publish => &mut t.publishers,
                Action::Subscribe => &mut t.subscribers,
            }
        }
        match (change, action) {
            (Change::Created, _) => t.owner = target,
            (Change::Updated, _) => t.changed_block = block,
            (Change::Granted | Change::Joined, Some(a)) => {
                set(t, a).insert(target);
            }
            (Change::Revoked, Some(a)) => {
                set(t, a).remove(&target);
            }
            _ => {}
        }
    }

    /// The topics `who` owns or holds an action on, in creation order.
    pub fn of_address(&self, who: &Address) -> Vec<&Topic> {
        self.topics
            .iter()
            .filter(|t| {
                &t.owner == who || t.publishers.contains(who) || t.subscribers.contains(who)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replays_creations_grants_joins_and_revocations() {
        let (t, u) = (B256::repeat_byte(1), B256::repeat_byte(2));
        let (owner, a, b) = (
            Address::repeat_byte(9),
            Address::repeat_byte(1),
            Address::repeat_byte(2),
        );
        let mut acl = Acl::default();
        acl.created(t, "t".into(), 3);
        acl.changed(&t, owner, None, Change::Created, 3);
        acl.created(u, "u".into(), 4);
        acl.changed(&t, a, Some(Action::Publish), Change::Granted, 5);
        acl.changed(&t, b, Some(Action::Subscribe), Change::Joined, 5);
        acl.changed(&t, a, Some(Action::Subscribe), Change::Granted, 6);
        acl.changed(&t, a, Some(Action::Publish), Change::Revoked, 7);
        acl.changed(&t, owner, None, Change::Updated, 8);
        // an event of a topic never created, and a replayed creation, change nothing
        acl.changed(&B256::ZERO, a, Some(Action::Publish), Change::Granted, 9);
        acl.created(t, "again".into(), 9);
        let got = acl.get(&t).expect("t");
        assert_eq!(got.name, "t");
        assert_eq!(got.owner, owner);
        assert!(got.publishers.is_empty());
        assert_eq!(got.subscribers, BTreeSet::from([a, b]));
        assert_eq!((got.created_block, got.changed_block), (3, 8));
        assert_eq!(acl.len(), 2);
        assert_eq!(acl.topics()[1].name, "u");
        let names: Vec<&str> = acl.of_address(&a).iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["t"]);
        assert!(acl.of_address(&Address::repeat_byte(7)).is_empty());
    }
}
