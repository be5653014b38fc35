#!/usr/bin/env python3
"""Writes a small GeoIP2-Country-shaped .mmdb for the geo tests.

    make_mmdb.py OUT.mmdb CIDR=CC [CIDR=CC ...]

Each network maps to {"country": {"iso_code": CC}}, the shape MaxMind's Country and City
databases use. Needs mmdb-writer and netaddr (tests/requirements.txt).
"""
import sys

from mmdb_writer import MMDBWriter
from netaddr import IPSet

def main() -> None:
    out, pairs = sys.argv[1], sys.argv[2:]
    writer = MMDBWriter(ip_version=6, ipv4_compatible=True, database_type="GeoIP2-Country")
    for pair in pairs:
        cidr, cc = pair.split("=")
        writer.insert_network(IPSet([cidr]), {"country": {"iso_code": cc}})
    writer.to_db_file(out)

if __name__ == "__main__":
    main()
