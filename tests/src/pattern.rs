//! Seeded data patterns for the data round-trip tests (issue #19): write a
//! known pattern into a file or a block device, read it back byte for byte.
//!
//! Every 8-byte word is a function of (seed, word index), so two seeds never
//! agree on a word by accident, a shifted or truncated copy does not match,
//! and a zero-filled volume (a snapshot that copied nothing) fails at offset 0.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::Path;

/// Bytes per write/read call (1 MiB: large enough to be quick, small enough
/// to keep memory flat for a 1 GiB pattern).
const CHUNK: usize = 1 << 20;

/// splitmix64 of (seed, word): a cheap, well-mixed word per position.
fn word(seed: u64, index: u64) -> u64 {
    let mut z = seed
        .wrapping_mul(0x9e37_79b9_7f4a_7c15)
        .wrapping_add(index.wrapping_add(1).wrapping_mul(0xbf58_476d_1ce4_e5b9));
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// Fills `buf` with the pattern bytes of `seed` that live at `offset`
/// (`offset` a multiple of 8).
pub fn fill(seed: u64, offset: u64, buf: &mut [u8]) {
    let first = offset / 8;
    for (i, chunk) in buf.chunks_mut(8).enumerate() {
        let w = word(seed, first + i as u64).to_le_bytes();
        chunk.copy_from_slice(&w[..chunk.len()]);
    }
}

/// Writes `len` bytes of pattern `seed` at `offset` of `path` (a regular file,
/// created when missing, or a block device), then fsyncs it.
pub fn write(path: &Path, seed: u64, offset: u64, len: u64) -> std::io::Result<()> {
    let mut f = OpenOptions::new()
        .write(true)
        .create(!is_block(path))
        .truncate(false)
        .open(path)?;
    f.seek(SeekFrom::Start(offset))?;
    let mut buf = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        fill(seed, offset + done, &mut buf[..n]);
        f.write_all(&buf[..n])?;
        done += n as u64;
    }
    f.sync_all()
}

/// Reads `len` bytes at `offset` of `path` and compares them with pattern
/// `seed`. The error names the first differing offset and what was found there.
pub fn verify(path: &Path, seed: u64, offset: u64, len: u64) -> Result<(), String> {
    let mut f = File::open(path).map_err(|e| format!("open {}: {e}", path.display()))?;
    f.seek(SeekFrom::Start(offset))
        .map_err(|e| format!("seek {}: {e}", path.display()))?;
    let mut want = vec![0u8; CHUNK];
    let mut got = vec![0u8; CHUNK];
    let mut done = 0u64;
    while done < len {
        let n = (len - done).min(CHUNK as u64) as usize;
        f.read_exact(&mut got[..n])
            .map_err(|e| format!("read {} at {}: {e}", path.display(), offset + done))?;
        fill(seed, offset + done, &mut want[..n]);
        if got[..n] == want[..n] {
            done += n as u64;
            continue;
        }
        if let Some(i) = (0..n).find(|&i| got[i] != want[i]) {
            let at = offset + done + i as u64;
            let end = (i + 16).min(n);
            return Err(format!(
                "{}: pattern {seed} differs at byte {at}: found {:02x?}, want {:02x?}",
                path.display(),
                &got[i..end],
                &want[i..end]
            ));
        }
        done += n as u64;
    }
    Ok(())
}

fn is_block(path: &Path) -> bool {
    use std::os::unix::fs::FileTypeExt;
    std::fs::metadata(path).is_ok_and(|m| m.file_type().is_block_device())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pattern_verifies_and_another_seed_or_offset_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("f");
        write(&p, 7, 0, 3 * CHUNK as u64 + 5).unwrap();
        verify(&p, 7, 0, 3 * CHUNK as u64 + 5).unwrap();
        verify(&p, 7, 4096, 8192).unwrap();
        let e = verify(&p, 8, 0, 4096).unwrap_err();
        assert!(e.contains("differs at byte 0"), "{e}");
        // Each position has its own words: data moved by one word does not
        // match, and filling from an offset continues the same stream.
        let mut a = [0u8; 64];
        let mut b = [0u8; 56];
        fill(7, 0, &mut a);
        fill(7, 8, &mut b);
        assert_ne!(a[..56], b);
        assert_eq!(a[8..], b);
        // A zero-filled file is not a pattern.
        std::fs::write(&p, vec![0u8; 4096]).unwrap();
        assert!(verify(&p, 7, 0, 4096).is_err());
        // Short: the read error is reported, not a pass.
        assert!(verify(&p, 7, 0, 8192).unwrap_err().contains("read"));
    }
}
