//! Streamed answers: upstream bytes split into SSE events (chunk size from
//! the first byte), each event's data fed to the stream translators the
//! gateway runs on upstream streams (Anthropic, Gemini → OpenAI chunks) and
//! on its own OpenAI chunks for other callers (→ Anthropic, Responses,
//! Gemini, Bedrock).
#![no_main]

use libfuzzer_sys::fuzz_target;
use tollgate_core::sse::SseSplitter;
use tollgate_translate::anthropic::{FromOpenAi, ToOpenAi};
use tollgate_translate::bedrock_stream::OpenAiToBedrock;
use tollgate_translate::gemini_stream::{GeminiToOpenAi, OpenAiToGemini};
use tollgate_translate::responses::ResponsesStream;

fuzz_target!(|data: &[u8]| {
    let Some((&step, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(step).max(1);
    let mut split = SseSplitter::default();
    let mut to_openai = ToOpenAi::new(true);
    let mut from_openai = FromOpenAi::new();
    let mut gemini = GeminiToOpenAi::new("m", 0, true);
    let mut to_gemini = OpenAiToGemini::new();
    let mut to_bedrock = OpenAiToBedrock::default();
    let mut responses = ResponsesStream::new(serde_json::Map::new());
    let mut out = Vec::new();
    for chunk in rest.chunks(step) {
        for ev in split.push(chunk) {
            let data = ev.data();
            out.clear();
            let _ = to_openai.on_data(&data, &mut out);
            from_openai.on_data(&data, &mut out);
            responses.on_data(&data, &mut out);
            let _ = gemini.event(&data);
            let _ = to_gemini.event(&data);
            let _ = to_bedrock.event(&data);
        }
    }
    let _ = gemini.finish();
});
