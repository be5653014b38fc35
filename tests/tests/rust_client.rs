//! A Rust MQTT client library (rumqttc) through the proxy: MQTT 5.0 over TCP, QoS 0–2.

use std::time::Duration;

use flytrap_tests::{Mosquitto, Proxy};
use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::mqttbytes::v5::Packet;
use rumqttc::v5::{AsyncClient, Event, MqttOptions};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rumqttc_v5_publishes_and_receives_at_every_qos() {
    let broker = Mosquitto::start();
    let proxy = Proxy::start(&[broker.addr]);
    let mut options = MqttOptions::new("rumqttc-1", "127.0.0.1", proxy.tcp.port());
    options.set_keep_alive(Duration::from_secs(5));
    let (client, mut events) = AsyncClient::new(options, 16);
    client.subscribe("rq/#", QoS::ExactlyOnce).await.unwrap();
    for (i, qos) in [QoS::AtMostOnce, QoS::AtLeastOnce, QoS::ExactlyOnce]
        .into_iter()
        .enumerate()
    {
        client
            .publish(format!("rq/{i}"), qos, false, vec![i as u8; 10])
            .await
            .unwrap();
    }
    let mut received = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while received.len() < 3 {
        let event = tokio::time::timeout_at(deadline, events.poll())
            .await
            .expect("deliveries within 10 s")
            .expect("event loop");
        if let Event::Incoming(Packet::Publish(p)) = event {
            received.push((
                String::from_utf8_lossy(&p.topic).to_string(),
                p.payload.to_vec(),
            ));
        }
    }
    received.sort();
    assert_eq!(
        received,
        (0..3u8)
            .map(|i| (format!("rq/{i}"), vec![i; 10]))
            .collect::<Vec<_>>()
    );
}
