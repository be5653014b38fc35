#!/usr/bin/env python3
"""Sign in to FlyTrap with the challenge scheme, then subscribe and publish.

The challenge scheme (authentication method ``flytrap-siwe-v1``) is MQTT 5 enhanced
authentication:

1. CONNECT carries Authentication Method ``flytrap-siwe-v1`` and, as Authentication Data,
   the client's Ethereum address.
2. The proxy answers AUTH 0x18 (Continue authentication) whose Authentication Data is a
   Sign-In with Ethereum (EIP-4361) message with a fresh nonce, valid for this connection.
3. The client checks the message (its address, its client id), signs it with EIP-191
   ``personal_sign`` (eth-account) and answers AUTH 0x18 with the signature.
4. The proxy verifies it and the broker's CONNACK follows.

paho-mqtt 2.1 has no AUTH support (an AUTH packet is an "unrecognised command" to it), so
``SiweClient`` adds the one handler the exchange needs.

    pip install -r examples/requirements.txt
    flytrap key new --out client.key          # then grant its address on the topic
    python3 examples/siwe_paho.py --key client.key --topic demo/t

Exit status 0 when the message came back through the proxy; 1 with a one-line reason if not.
"""

import argparse
import sys
import threading
import urllib.parse

import paho.mqtt.client as mqtt
from eth_account import Account
from eth_account.messages import encode_defunct
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

METHOD = "flytrap-siwe-v1"
AUTH = 0xF0
CONTINUE_AUTHENTICATION = 0x18


def check_challenge(message: str, address: str, client_id: str) -> None:
    """Refuses to sign anything but a sign-in for this address and client id."""
    lines = message.split("\n")
    if len(lines) < 2 or not lines[0].endswith(
        " wants you to sign in with your Ethereum account:"
    ):
        raise ValueError("not a Sign-In with Ethereum message")
    if lines[1].lower() != address.lower():
        raise ValueError(f"the challenge is for {lines[1]}, not {address}")
    request = [l[len("Request ID: "):] for l in lines if l.startswith("Request ID: ")]
    if request != [urllib.parse.quote(client_id, safe="-._~")]:
        raise ValueError(f"the challenge is for client id {request}, not {client_id!r}")


class SiweClient(mqtt.Client):
    """A paho client that answers FlyTrap's challenge."""

    def __init__(self, account, client_id: str):
        super().__init__(
            mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5
        )
        self.account = account
        self.siwe_client_id = client_id
        self.challenge = None
        self.auth_error = None

    def connect_signed(self, host: str, port: int, keepalive: int = 60):
        props = Properties(PacketTypes.CONNECT)
        props.AuthenticationMethod = METHOD
        props.AuthenticationData = self.account.address.encode()
        return self.connect(host, port, keepalive, properties=props)

    def _packet_handle(self):
        if self._in_packet["command"] & 0xF0 == AUTH:
            return self._handle_auth()
        return super()._packet_handle()

    def _handle_auth(self):
        packet = self._in_packet["packet"]
        reason = packet[0] if packet else 0
        props = Properties(PacketTypes.AUTH)
        if len(packet) > 1:
            props.unpack(packet[1:])
        if reason != CONTINUE_AUTHENTICATION or getattr(props, "AuthenticationMethod", None) != METHOD:
            self.auth_error = f"unexpected AUTH (reason 0x{reason:02x})"
            return mqtt.MQTTErrorCode.MQTT_ERR_PROTOCOL
        message = bytes(props.AuthenticationData).decode()
        try:
            check_challenge(message, self.account.address, self.siwe_client_id)
        except ValueError as e:
            self.auth_error = str(e)
            return mqtt.MQTTErrorCode.MQTT_ERR_AUTH
        self.challenge = message
        signature = self.account.sign_message(encode_defunct(text=message)).signature
        answer = Properties(PacketTypes.AUTH)
        answer.AuthenticationMethod = METHOD
        answer.AuthenticationData = ("0x" + bytes(signature).hex()).encode()
        body = bytes([CONTINUE_AUTHENTICATION]) + answer.pack()
        out = bytearray([AUTH])
        self._pack_remaining_length(out, len(body))
        out.extend(body)
        return self._packet_queue(AUTH, bytes(out), 0, 0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=1883)
    ap.add_argument("--key", required=True, help="key file: one 0x-hex secp256k1 private key")
    ap.add_argument("--client-id", default="siwe-paho")
    ap.add_argument("--topic", default="demo/t")
    ap.add_argument("--timeout", type=float, default=20.0)
    args = ap.parse_args()

    with open(args.key) as f:
        account = Account.from_key(f.read().strip())
    client = SiweClient(account, args.client_id)
    done = threading.Event()
    result = {"error": None}
    payload = f"hello from {account.address}".encode()

    def fail(why):
        result["error"] = why
        done.set()

    def on_connect(c, _userdata, _flags, reason, _props):
        print(f"connack {reason.value:#04x} ({reason})", flush=True)
        if reason.is_failure:
            fail(f"CONNACK {reason.value:#04x} {reason}")
            return
        c.subscribe(args.topic, qos=1)

    def on_subscribe(c, _userdata, _mid, reasons, _props):
        print(f"suback {[r.value for r in reasons]}", flush=True)
        if any(r.is_failure for r in reasons):
            fail(f"SUBACK {[str(r) for r in reasons]}")
            return
        c.publish(args.topic, payload, qos=1)

    def on_publish(_c, _userdata, _mid, reason, _props):
        print(f"puback {reason.value:#04x}", flush=True)
        if reason.is_failure:
            fail(f"PUBACK {reason}")

    def on_message(_c, _userdata, msg):
        print(f"received {msg.topic} {msg.payload.decode(errors='replace')}", flush=True)
        if msg.payload == payload:
            done.set()

    def on_disconnect(_c, _userdata, _flags, reason, _props):
        if not done.is_set():
            fail(client.auth_error or f"disconnected: {reason}")

    client.on_connect = on_connect
    client.on_subscribe = on_subscribe
    client.on_publish = on_publish
    client.on_message = on_message
    client.on_disconnect = on_disconnect
    try:
        client.connect_signed(args.host, args.port)
    except OSError as e:
        print(f"error: cannot connect to {args.host}:{args.port}: {e}", file=sys.stderr)
        return 1
    client.loop_start()
    if not done.wait(args.timeout):
        result["error"] = result["error"] or "timed out"
    client.disconnect()
    client.loop_stop()
    if result["error"]:
        print(f"error: {result['error']}", file=sys.stderr)
        return 1
    print("signed in with the challenge scheme, published and received", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
