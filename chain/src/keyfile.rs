//! Key files: one `0x`-hex secp256k1 private key (64 hex digits), made with mode 0600.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

use alloy::signers::local::PrivateKeySigner;

use crate::Error;

/// Reads a key file. Surrounding white space is ignored; anything else that is not
/// `0x` + 64 hex digits is an error naming the file.
pub fn read_key(path: &Path) -> Result<PrivateKeySigner, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        Error::InvalidInput(format!("cannot read key file {}: {e}", path.display()))
    })?;
    parse_key(text.trim())
        .map_err(|why| Error::InvalidInput(format!("malformed key file {}: {why}", path.display())))
}

/// Parses `0x` + 64 hex digits into a signer.
pub fn parse_key(s: &str) -> Result<PrivateKeySigner, String> {
    let digits = s
        .strip_prefix("0x")
        .ok_or("expected 0x and 64 hex digits")?;
    if digits.len() != 64 || !digits.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err("expected 0x and 64 hex digits".into());
    }
    s.parse::<PrivateKeySigner>()
        .map_err(|_| "not a valid secp256k1 private key".to_string())
}

/// The key file's text: `0x` + 64 lower-case hex digits and a newline.
pub fn key_text(signer: &PrivateKeySigner) -> String {
    format!("0x{}\n", alloy::hex::encode(signer.to_bytes()))
}

/// Writes `signer` to a new file `path` with mode 0600. Refuses to replace an existing file,
/// and never leaves a partial file: the key is written and synced under a temporary name,
/// then linked into place (which fails if `path` appeared meanwhile).
pub fn write_new_key(path: &Path, signer: &PrivateKeySigner) -> Result<(), Error> {
    let io = |e: std::io::Error| {
        Error::InvalidInput(format!("cannot write key file {}: {e}", path.display()))
    };
    if path.exists() {
        return Err(Error::InvalidInput(format!(
            "key file {} already exists (not replaced)",
            path.display()
        )));
    }
    let tmp = path.with_file_name(format!(
        ".{}.tmp{}",
        path.file_name().and_then(|n| n.to_str()).unwrap_or("key"),
        std::process::id()
    ));
    let result = (|| {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        f.write_all(key_text(signer).as_bytes())?;
        f.sync_all()?;
        std::fs::hard_link(&tmp, path)
    })();
    let _ = std::fs::remove_file(&tmp);
    result.map_err(io)?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(d) = std::fs::File::open(dir)
    {
        let _ = d.sync_all();
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn round_trip_with_mode_0600_and_no_overwrite() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.key");
        let signer = PrivateKeySigner::random();
        write_new_key(&path, &signer).unwrap();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        assert_eq!(read_key(&path).unwrap().address(), signer.address());
        let err = write_new_key(&path, &PrivateKeySigner::random()).unwrap_err();
        assert!(err.to_string().contains("already exists"));
        assert_eq!(read_key(&path).unwrap().address(), signer.address());
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn malformed_keys_are_named() {
        let dir = tempfile::tempdir().unwrap();
        for bad in [
            "",
            "0x12",
            "nothex",
            "0xzz00000000000000000000000000000000000000000000000000000000000000",
            "0x0000000000000000000000000000000000000000000000000000000000000000",
        ] {
            let path = dir.path().join("bad.key");
            std::fs::write(&path, bad).unwrap();
            let e = read_key(&path).unwrap_err().to_string();
            assert!(
                e.contains("malformed key file") && e.contains("bad.key"),
                "{bad}: {e}"
            );
        }
        let e = read_key(&dir.path().join("missing.key"))
            .unwrap_err()
            .to_string();
        assert!(e.contains("cannot read key file"), "{e}");
    }
}
