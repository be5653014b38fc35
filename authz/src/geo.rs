//! Countries of client addresses, from a MaxMind GeoIP2/GeoLite2 Country (or City) `.mmdb`.

use std::net::IpAddr;
use std::path::Path;

use flytrap_chain::Country;

/// Why the database could not be opened.
#[derive(Debug, thiserror::Error)]
#[error("cannot open {path}: {reason}")]
pub struct GeoError {
    path: String,
    reason: String,
}

/// An opened database.
#[derive(Debug)]
pub struct Geo {
    reader: maxminddb::Reader<Vec<u8>>,
}

impl Geo {
    /// Opens `path`.
    pub fn open(path: &Path) -> Result<Geo, GeoError> {
        let reader = maxminddb::Reader::open_readfile(path).map_err(|e| GeoError {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        Ok(Geo { reader })
    }

    /// The ISO 3166 country of `ip`, if the database knows it.
    pub fn country(&self, ip: IpAddr) -> Option<Country> {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(ip),
            v4 => v4,
        };
        let found: maxminddb::geoip2::Country<'_> = self.reader.lookup(ip).ok()??;
        let code = found.country?.iso_code?.as_bytes();
        match code {
            [a, b] => Some(Country([a.to_ascii_uppercase(), b.to_ascii_uppercase()])),
            _ => None,
        }
    }
}
