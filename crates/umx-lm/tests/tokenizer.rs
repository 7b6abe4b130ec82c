//! The `tokenizer` feature: tokenizer.json through the `tokenizers` crate gives the ids
//! Hugging Face's Python `tokenizers` gave (written by `tests/reference/make_tiny_llama.py`).
#![cfg(feature = "tokenizer")]

use std::path::PathBuf;
use umx_lm::{StreamingDetokenizer, Tokenizer};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/tiny_llama")
}

fn reference() -> (String, Vec<u32>) {
    let text = std::fs::read_to_string(dir().join("reference.json")).unwrap();
    let v: serde_json::Value = serde_json::from_str(&text).unwrap();
    let t = &v["tokenizer"];
    let ids = t["ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i.as_u64().unwrap() as u32)
        .collect();
    (t["text"].as_str().unwrap().to_string(), ids)
}

#[test]
fn encoding_matches_the_python_tokenizer_and_decodes_back() {
    let tok = Tokenizer::from_file(dir().join("tokenizer.json")).unwrap();
    let (text, ids) = reference();
    assert_eq!(tok.encode(&text, true).unwrap(), ids);
    assert_eq!(tok.decode(&ids).unwrap(), text);
}

#[test]
fn streaming_detokenizer_holds_back_split_characters() {
    let tok = Tokenizer::from_file(dir().join("tokenizer.json")).unwrap();
    let (text, ids) = reference();
    let mut stream = StreamingDetokenizer::new(&tok);
    let mut pieces = Vec::new();
    for id in ids {
        pieces.push(stream.push(id).unwrap());
    }
    assert_eq!(pieces.concat(), text);
    // "é" is two byte tokens: the first gives no text, the second the whole character.
    assert!(pieces.iter().any(|p| p.is_empty()));
    assert!(pieces.iter().all(|p| !p.contains('\u{FFFD}')));
}

#[test]
fn a_missing_tokenizer_file_is_an_error_naming_it() {
    let err = Tokenizer::from_file(dir().join("nope.json"))
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("nope.json"), "{err}");
}
