//! Every contract operation through `Client`, against a real anvil.

mod common;

use common::{Chain, dev_key, rt};
use flytrap_chain::bindings::FlyTrap;
use flytrap_chain::{
    Action, Address, AuditRecord, Client, Country, Error, Fee, Query, Spooled, TopicSpec, U256,
    topic_id,
};

#[test]
fn topics_grants_views_and_operators() {
    let chain = Chain::start();
    let op = &chain.operator;
    let alice = dev_key(1).address();
    let bob = dev_key(2).address();
    rt().block_on(async {
        assert_eq!(op.admin().await.unwrap(), dev_key(0).address());
        assert!(op.is_operator(dev_key(0).address()).await.unwrap());
        op.ensure_contract().await.unwrap();

        let spec = TopicSpec {
            countries: vec!["DE".parse().unwrap(), "FR".parse().unwrap()],
            sensitive: true,
            ..TopicSpec::default()
        };
        let (id, tx) = op
            .create_topic("plant/+/temp", &spec, "pilot")
            .await
            .unwrap();
        assert_eq!(id, topic_id("plant/+/temp"));
        assert!(tx.gas_used > 0);
        let t = op.topic(id).await.unwrap().unwrap();
        assert_eq!(t.name, "", "names are not stored on chain");
        assert_eq!(
            op.topic_by_name("plant/+/temp").await.unwrap().name,
            "plant/+/temp"
        );
        assert_eq!(t.owner, dev_key(0).address());
        assert_eq!(t.pub_fee, Fee::Closed);
        assert_eq!(t.countries, spec.countries);
        assert!(t.sensitive);
        assert!(op.topic(topic_id("nope")).await.unwrap().is_none());
        let e = op.topic_by_name("nope").await.unwrap_err();
        assert_eq!(e.to_string(), "unknown topic 'nope'");

        op.grant(id, alice, Action::Publish, "ok").await.unwrap();
        op.grant(id, bob, Action::Subscribe, "").await.unwrap();
        assert!(op.is_member(id, alice, Action::Publish).await.unwrap());
        assert!(!op.is_member(id, alice, Action::Subscribe).await.unwrap());
        let a = op.verify(id, alice, Action::Publish).await.unwrap();
        assert!(a.exists && a.allowed && a.sensitive);
        assert_eq!(a.countries.len(), 2);
        let a = op.verify(id, bob, Action::Publish).await.unwrap();
        assert!(a.exists && !a.allowed);

        let answers = op
            .check_batch(&[
                Query {
                    topic_id: id,
                    who: alice,
                    action: Action::Publish,
                },
                Query {
                    topic_id: id,
                    who: bob,
                    action: Action::Publish,
                },
                Query {
                    topic_id: id,
                    who: bob,
                    action: Action::Subscribe,
                },
                Query::new("unknown", alice, Action::Publish),
            ])
            .await
            .unwrap();
        assert_eq!(
            answers
                .iter()
                .map(|a| (a.exists, a.allowed))
                .collect::<Vec<_>>(),
            vec![(true, true), (true, false), (true, true), (false, false)]
        );
        assert_eq!(answers[0].countries, vec![Country(*b"DE"), Country(*b"FR")]);

        // Decoded custom errors.
        let e = op.grant(id, alice, Action::Publish, "").await.unwrap_err();
        assert_eq!(e.revert_name(), Some("AlreadyMember"), "{e}");
        let e = chain
            .client(1)
            .revoke(id, bob, Action::Subscribe, "")
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("NotOwner"), "{e}");
        assert!(e.to_string().contains("NotOwner"), "{e}");
        let e = op
            .create_topic("plant/+/temp", &spec, "")
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("TopicExists"));
        let e = op
            .grant(topic_id("nope"), alice, Action::Publish, "")
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("UnknownTopic"));
        let e = chain
            .client(1)
            .join(id, Action::Publish, U256::ZERO)
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("JoinClosed"));

        op.revoke(id, bob, Action::Subscribe, "gone").await.unwrap();
        assert!(!op.is_member(id, bob, Action::Subscribe).await.unwrap());
        let e = op.revoke(id, bob, Action::Subscribe, "").await.unwrap_err();
        assert_eq!(e.revert_name(), Some("NotMember"));

        // Update, list.
        let open = TopicSpec {
            pub_fee: Fee::Free,
            ..TopicSpec::default()
        };
        op.update_topic(id, &open, "open it").await.unwrap();
        let t = op.topic(id).await.unwrap().unwrap();
        assert!(t.countries.is_empty() && !t.sensitive && t.pub_fee == Fee::Free);
        op.create_topic("b", &TopicSpec::default(), "")
            .await
            .unwrap();
        // Operators.
        let e = chain.client(1).set_operator(bob, true).await.unwrap_err();
        assert_eq!(e.revert_name(), Some("NotAdmin"));
        op.set_operator(bob, true).await.unwrap();
        assert!(op.is_operator(bob).await.unwrap());
        assert_eq!(op.operator(bob).await.unwrap(), (true, 0));
        op.set_operator(bob, false).await.unwrap();
        assert!(!op.is_operator(bob).await.unwrap());

        // History: every ACL change is an event.
        let changes = op.events::<FlyTrap::AclChanged>(0, None).await.unwrap();
        let kinds: Vec<u8> = changes.iter().map(|c| c.event.change).collect();
        assert_eq!(kinds, vec![0, 1, 1, 2, 4, 0]);
        // the packed grant() logs what it was given
        assert_eq!(changes[1].event.reason, "ok");
        assert_eq!(changes[1].event.target, alice);
        assert_eq!(changes[1].event.action, 0);
        assert_eq!(changes[2].event.target, bob);
        assert_eq!(changes[2].event.action, 1);
        assert_eq!(changes[3].event.reason, "gone");
        assert_eq!(changes[3].event.target, bob);
        let created = op.events::<FlyTrap::TopicCreated>(0, None).await.unwrap();
        assert_eq!(created[0].event.name, "plant/+/temp");
        let t0 = op.block_time(changes[0].block).await.unwrap();
        assert!(op.first_block_at_or_after(t0).await.unwrap() <= changes[0].block);
    });
}

#[test]
fn fleets_are_granted_in_batches_and_wrong_addresses_named_first() {
    let chain = Chain::start();
    let op = &chain.operator;
    let alice = dev_key(1).address();
    rt().block_on(async {
        op.create_topic("b", &TopicSpec::default(), "")
            .await
            .unwrap();
        // Fleets: grants through grantMany, a wrong address named before anything is sent.
        let fleet: Vec<Address> = (0..300u64)
            .map(|i| Address::left_padding_from(&(0x000f_1ee7_0000 + i).to_be_bytes()))
            .collect();
        let b = topic_id("b");
        let txs = op
            .change_many(b, &fleet, Action::Subscribe, "fleet", true)
            .await
            .unwrap();
        assert_eq!(txs.len(), 300);
        assert_eq!(txs[0], txs[flytrap_chain::client::GRANT_BATCH - 1]);
        assert_ne!(txs[0].hash, txs[299].hash, "two batches");
        assert!(
            op.is_member(b, fleet[299], Action::Subscribe)
                .await
                .unwrap()
        );
        let e = op
            .change_many(b, &[alice, fleet[7]], Action::Subscribe, "", true)
            .await
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{:#x} already holds sub on this topic (nothing was sent)",
                fleet[7]
            )
        );
        let e = op
            .change_many(b, &[alice, alice], Action::Subscribe, "", true)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("listed twice"), "{e}");
        assert!(!op.is_member(b, alice, Action::Subscribe).await.unwrap());
        let txs = op
            .change_many(b, &fleet[..3], Action::Subscribe, "", false)
            .await
            .unwrap();
        assert_eq!(txs.len(), 3);
        assert!(!op.is_member(b, fleet[0], Action::Subscribe).await.unwrap());
    });
}

#[test]
fn a_fee_payment_ends_in_the_owners_withdrawal() {
    let chain = Chain::start();
    let owner = chain.client(1);
    let member = chain.client(2);
    let fee = 1_000_000_000_000_000u128; // 0.001 ether
    rt().block_on(async {
        let spec = TopicSpec {
            pub_fee: Fee::Wei(fee),
            sub_fee: Fee::Free,
            ..TopicSpec::default()
        };
        let (id, _) = owner.create_topic("paid", &spec, "").await.unwrap();

        let e = member
            .join(id, Action::Publish, U256::from(fee - 1))
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("WrongFee"), "{e}");
        assert!(e.to_string().contains(&format!("{fee} wei")), "{e}");

        member
            .join(id, Action::Publish, U256::from(fee))
            .await
            .unwrap();
        member
            .join(id, Action::Subscribe, U256::ZERO)
            .await
            .unwrap();
        let e = member
            .join(id, Action::Publish, U256::from(fee))
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("AlreadyMember"));
        assert!(
            owner
                .is_member(id, dev_key(2).address(), Action::Publish)
                .await
                .unwrap()
        );
        let m = dev_key(2).address();
        assert_eq!(owner.paid(id, m).await.unwrap(), U256::from(fee));
        assert_eq!(owner.joiners(id).await.unwrap(), vec![m]);
        assert_eq!(
            owner.withdrawable(id).await.unwrap(),
            (U256::from(fee), vec![(m, U256::from(fee))])
        );
        // only the owner collects
        let e = member.withdraw(id).await.unwrap_err();
        assert_eq!(e.revert_name(), Some("NotOwner"), "{e}");

        let before = owner.eth_balance(dev_key(1).address()).await.unwrap();
        let (amount, txs) = owner.withdraw(id).await.unwrap();
        assert_eq!(amount, U256::from(fee));
        assert_eq!(txs.len(), 1);
        let tx = txs[0];
        let after = owner.eth_balance(dev_key(1).address()).await.unwrap();
        let receipt_cost = {
            let r = owner
                .provider()
                .get_transaction_receipt(tx.hash)
                .await
                .unwrap()
                .unwrap();
            U256::from(r.gas_used) * U256::from(r.effective_gas_price)
        };
        assert_eq!(
            after + receipt_cost - before,
            U256::from(fee),
            "balance delta = fee - gas"
        );
        assert_eq!(owner.paid(id, m).await.unwrap(), U256::ZERO);
        let e = owner.withdraw(id).await.unwrap_err();
        assert_eq!(e.to_string(), "no fees to withdraw from this topic");
        // a fee the contract cannot store exactly is refused by name
        let odd = TopicSpec {
            pub_fee: Fee::Wei(fee + 1),
            ..TopicSpec::default()
        };
        let e = owner.create_topic("odd", &odd, "").await.unwrap_err();
        assert_eq!(e.revert_name(), Some("BadFee"), "{e}");
    });
}

use alloy::providers::Provider as _;

#[test]
fn audit_records_are_written_once_per_seq() {
    let chain = Chain::start();
    let op = &chain.operator;
    let me = dev_key(0).address();
    let records: Vec<Spooled> = [
        AuditRecord::Ban {
            ip: "192.0.2.1".parse().unwrap(),
            until: 99,
            failures: 5,
            time: 1,
        },
        AuditRecord::WrongCountry {
            client: dev_key(3).address(),
            topic_id: topic_id("t"),
            ip: "2001:db8::1".parse().unwrap(),
            country: "US".parse().unwrap(),
            time: 2,
        },
        AuditRecord::ConnectFailed {
            ip: "192.0.2.2".parse().unwrap(),
            client: None,
            reason: 0x86,
            time: 3,
        },
        AuditRecord::SensitiveReport {
            topic_id: topic_id("s"),
            from: 10,
            to: 20,
            publishers: vec![dev_key(1).address()],
            receivers: vec![dev_key(2).address()],
        },
    ]
    .into_iter()
    .enumerate()
    .map(|(i, record)| Spooled {
        seq: i as u64 + 1,
        record,
    })
    .collect();
    rt().block_on(async {
        assert!(op.estimate_record_audit(&records).await.unwrap() > 21_000);
        op.record_audit(&records).await.unwrap();
        assert_eq!(op.last_seq(me).await.unwrap(), 4);
        // Resent: skipped.
        op.record_audit(&records).await.unwrap();
        let bans = op.events::<FlyTrap::Banned>(0, None).await.unwrap();
        assert_eq!(bans.len(), 1);
        assert_eq!(bans[0].event.failures, 5);
        assert_eq!(
            op.events::<FlyTrap::WrongCountry>(0, None)
                .await
                .unwrap()
                .len(),
            1
        );
        assert_eq!(
            op.events::<FlyTrap::ConnectFailed>(0, None)
                .await
                .unwrap()
                .len(),
            1
        );
        let reports = op
            .events::<FlyTrap::SensitiveReport>(0, None)
            .await
            .unwrap();
        assert_eq!(reports[0].event.topicId, topic_id("s"));
        let report = flytrap_chain::audit::unpack_report(&reports[0].event.report).unwrap();
        assert_eq!(report.receivers, vec![dev_key(2).address()]);
        assert_eq!(report.publishers, vec![dev_key(1).address()]);
        assert_eq!((report.seq, report.from, report.to), (4, 10, 20));

        // One kind alone.
        op.record(
            5,
            AuditRecord::Ban {
                ip: "192.0.2.3".parse().unwrap(),
                until: 1,
                failures: 1,
                time: 1,
            },
        )
        .await
        .unwrap();
        assert_eq!(op.last_seq(me).await.unwrap(), 5);
        let e = chain
            .client(1)
            .record(6, records[0].record.clone())
            .await
            .unwrap_err();
        assert_eq!(e.revert_name(), Some("NotOperator"));
    });
}

#[test]
fn an_unreachable_node_is_named() {
    let port = flytrap_chain::anvil::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let c = Client::new(
        &url,
        flytrap_chain::Address::repeat_byte(1),
        Some(dev_key(0)),
    )
    .unwrap();
    let e = rt().block_on(c.code()).unwrap_err();
    assert!(matches!(e, Error::Unreachable { .. }), "{e:?}");
    assert!(
        e.to_string()
            .starts_with(&format!("chain node unreachable at {url}")),
        "{e}"
    );
    let e = rt()
        .block_on(c.grant(topic_id("x"), dev_key(1).address(), Action::Publish, ""))
        .unwrap_err();
    assert!(e.is_unreachable(), "{e:?}");
    assert!(Client::new("ftp://x", flytrap_chain::Address::ZERO, None).is_err());
}

#[test]
fn no_contract_at_the_address() {
    let chain = Chain::start();
    let c = Client::new(
        &chain.anvil.url(),
        flytrap_chain::Address::repeat_byte(9),
        None,
    )
    .unwrap();
    let e = rt().block_on(c.ensure_contract()).unwrap_err();
    assert!(matches!(e, Error::NoContract(_)), "{e:?}");
}
