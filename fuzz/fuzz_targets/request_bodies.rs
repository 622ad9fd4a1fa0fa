//! Request-body decoding with the original's proto2 strictness, for every request type of
//! the command list: the first byte picks the command, the rest is its body. Decoding gives
//! the message or a typed error, never a panic; what decodes re-encodes and decodes again to
//! the same message.
#![no_main]

use dbproxy_protocol::{cmd, decode, Command};
use libfuzzer_sys::fuzz_target;
use prost::Message;

fn check<C: Command>(body: &[u8])
where
    C::Request: PartialEq + std::fmt::Debug,
{
    if let Ok(req) = decode::decode::<C::Request>(body) {
        let again = decode::decode::<C::Request>(&req.encode_to_vec())
            .expect("a decoded request re-encodes to a valid body");
        assert_eq!(again, req);
    }
    let _ = decode::validate(&<C::Request as prost::Name>::full_name(), body);
}

macro_rules! by_index {
    ($( $marker:ident { $($entry:tt)* } )*) => {
        fn run(index: u8, body: &[u8]) {
            let all: &[fn(&[u8])] = &[$(check::<cmd::$marker>),*];
            all[usize::from(index) % all.len()](body);
        }
    };
}

dbproxy_protocol::for_each_command!(by_index);

fuzz_target!(|data: &[u8]| {
    if let Some((&index, body)) = data.split_first() {
        run(index, body);
    }
});
