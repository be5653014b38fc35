//! Codec micro-benchmarks: the work the proxy does per packet on the hot path.
//!
//! `cargo bench -p flytrap-proto --bench codec`

use std::hint::black_box;

use bytes::BytesMut;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use flytrap_proto::{
    ConnectRewrite, Framer, Packet, Properties, Property, PropertyContext, Publish, QoS, Version,
    encode_properties, rewrite_connect, topic,
};

fn publish_frame(payload_len: usize) -> Vec<u8> {
    let payload = vec![0x5a; payload_len];
    let mut out = Vec::new();
    Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: "factory/line-3/sensor/temperature",
        packet_id: Some(42),
        topic_alias: None,
        properties: Properties::EMPTY,
        payload: &payload,
        payload_offset: 0,
    }
    .encode(Version::V5, &mut out);
    out
}

fn bench_publish(c: &mut Criterion) {
    let mut group = c.benchmark_group("publish");
    for size in [16usize, 1024] {
        let frame = publish_frame(size);
        group.throughput(Throughput::Elements(1));
        group.bench_function(format!("frame+decode/{size}B"), |b| {
            let framer = Framer::new(1 << 20);
            let mut buf = BytesMut::with_capacity(frame.len());
            b.iter(|| {
                buf.extend_from_slice(&frame);
                let f = framer.poll_frame(&mut buf).unwrap().unwrap();
                match Packet::decode(black_box(&f), Version::V5).unwrap() {
                    Packet::Publish(p) => black_box(p.topic.len()),
                    _ => unreachable!(),
                }
            });
        });
    }
    group.finish();
}

fn connect_frame() -> Vec<u8> {
    // The shape of a FlyTrap client's CONNECT (SPEC §1 vector "ascii-client-id").
    let mut raw = Vec::new();
    encode_properties(
        &[
            Property::ReceiveMaximum(20),
            Property::UserProperty(
                "flytrap-address",
                "0x1a642f0e3c3af545e7acbd38b07251b3990914f1",
            ),
            Property::UserProperty(
                "flytrap-signature",
                "0x4c74204a0c057a244365045bf351cd244a985d87b5fc43acbd1391c95a6849152c8db24a3a9b4e03876dc5c3aa8520f1ca96dbb4303d959b75da91147c0c07711b",
            ),
            Property::UserProperty("flytrap-timestamp", "1700000000"),
        ],
        &mut raw,
    );
    let mut out = Vec::new();
    flytrap_proto::Connect {
        version: Version::V5,
        clean_start: true,
        keep_alive: 60,
        properties: Properties::parse_raw(&raw, PropertyContext::Connect).unwrap(),
        client_id: "sensor-1",
        will: None,
        username: None,
        password: None,
    }
    .encode(&mut out);
    out
}

fn bench_connect(c: &mut Criterion) {
    let frame = connect_frame();
    let mut group = c.benchmark_group("connect");
    group.bench_function("decode+user-properties", |b| {
        b.iter(
            || match Packet::decode(black_box(&frame), Version::V5).unwrap() {
                Packet::Connect(c) => black_box(c.properties.user_property("flytrap-timestamp")),
                _ => unreachable!(),
            },
        )
    });
    group.bench_function("rewrite", |b| {
        let mut out = Vec::with_capacity(frame.len());
        b.iter(|| {
            out.clear();
            rewrite_connect(black_box(&frame), &ConnectRewrite::FLYTRAP, &mut out).unwrap()
        })
    });
    group.finish();
}

fn bench_topic(c: &mut Criterion) {
    let mut group = c.benchmark_group("topic");
    let t = "factory/line-3/sensor/temperature";
    for filter in [
        "factory/line-3/sensor/temperature",
        "factory/+/sensor/+",
        "factory/#",
    ] {
        group.bench_function(format!("match/{filter}"), |b| {
            b.iter(|| topic::matches(black_box(filter), black_box(t)))
        });
    }
    group.bench_function("validate-filter", |b| {
        b.iter(|| topic::validate_topic_filter(black_box("$share/g/factory/+/sensor/#")))
    });
    group.finish();
}

criterion_group!(benches, bench_publish, bench_connect, bench_topic);
criterion_main!(benches);
