//! The original's AES scheme (docs/compatibility.md#voice-messages-and-the-aes-placeholder), used for one thing only: the encrypted
//! "[语音]" placeholder that replaces the newest message of a conversation when it is a
//! voice message. Clients and msg_server decrypt it with the shared `aesKey`.

use aes::cipher::{generic_array::GenericArray, BlockEncrypt, KeyInit};
use aes::Aes256;
use base64::Engine;

/// Text the original encrypts at start-up as the voice placeholder.
pub const VOICE_PLACEHOLDER_TEXT: &str = "[语音]";

/// AES-256-ECB with the original's length-suffix padding, then standard base64.
///
/// Padding: zero-filled buffer of `ceil(len / 16)` blocks, plus one more block when
/// `len % 16 == 0` or `len % 16 > 12`; the plaintext at the start and the length as a
/// big-endian u32 in the last four bytes.
pub fn encrypt(key: &[u8; 32], plain: &[u8]) -> String {
    let len = plain.len();
    let mut blocks = len.div_ceil(16);
    if len.is_multiple_of(16) || len % 16 > 12 {
        blocks += 1;
    }
    let mut buf = vec![0u8; blocks * 16];
    buf[..len].copy_from_slice(plain);
    let total = buf.len();
    // The suffix is a u32 by definition of the scheme; payloads here are tiny constants.
    buf[total - 4..].copy_from_slice(&(len as u32).to_be_bytes());
    let cipher = Aes256::new(GenericArray::from_slice(key));
    for block in buf.chunks_exact_mut(16) {
        cipher.encrypt_block(GenericArray::from_mut_slice(block));
    }
    base64::engine::general_purpose::STANDARD.encode(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shipped_key_gives_the_documented_placeholder() {
        let key = b"12345678901234567890123456789012";
        assert_eq!(
            encrypt(key, VOICE_PLACEHOLDER_TEXT.as_bytes()),
            "QhGXlpFjvMFUNrtl1aaPzA=="
        );
    }

    #[test]
    fn block_count_follows_the_padding_rule() {
        let key = [7u8; 32];
        let decoded_len = |n: usize| {
            base64::engine::general_purpose::STANDARD
                .decode(encrypt(&key, &vec![b'x'; n]))
                .map(|v| v.len())
                .unwrap_or(0)
        };
        assert_eq!(decoded_len(0), 16);
        assert_eq!(decoded_len(12), 16);
        assert_eq!(decoded_len(13), 32);
        assert_eq!(decoded_len(16), 32);
        assert_eq!(decoded_len(17), 32);
    }
}
