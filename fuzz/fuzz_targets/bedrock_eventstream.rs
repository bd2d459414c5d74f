//! Bedrock's binary event stream: frames decoded from upstream bytes in
//! chunks of any size (CRCs, lengths, headers), each frame translated to
//! OpenAI chunks, then the end of the stream.
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_translate::bedrock_stream::{header, BedrockToOpenAi, FrameDecoder};
use tollgate_translate::ChunkWriter;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let writer = ChunkWriter {
        id: "id".into(),
        model: "m".into(),
        created: 0,
    };
    let mut decoder = FrameDecoder::default();
    let mut out = BedrockToOpenAi::new(writer, step % 2 == 0);
    for chunk in rest.chunks(step) {
        let Ok(frames) = decoder.push(chunk) else {
            return;
        };
        for m in &frames {
            let _ = header(&m, ":event-type");
            if out.frame(m).is_err() {
                return;
            }
        }
    }
    let _ = out.finish();
});
