//! Any bytes as an event stream: the decoder never panics, and feeding the stream in two
//! chunks split anywhere gives exactly what feeding it whole gives.
#![no_main]

use bindery_core::sse::SseDecoder;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&split, stream)) = data.split_first() else { return };
    let mut whole = SseDecoder::with_limit(4096);
    let expected = whole.feed(stream);
    whole.finish();

    let at = usize::from(split) * stream.len() / 255;
    let mut chunked = SseDecoder::with_limit(4096);
    let mut got = chunked.feed(&stream[..at]);
    got.extend(chunked.feed(&stream[at..]));
    chunked.finish();
    assert_eq!(expected, got);
    assert_eq!(whole.last_event_id(), chunked.last_event_id());
});
