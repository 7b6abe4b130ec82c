//! [`Tokenizer`]: text to token ids and back, through Hugging Face's `tokenizers` crate and a
//! checkpoint's `tokenizer.json` (the `tokenizer` feature).

use std::path::Path;
use umx::{Error, Result};

/// A Hugging Face tokenizer read from `tokenizer.json`.
pub struct Tokenizer {
    inner: tokenizers::Tokenizer,
}

impl Tokenizer {
    /// Reads `path` (a `tokenizer.json`).
    pub fn from_file(path: impl AsRef<Path>) -> Result<Tokenizer> {
        let path = path.as_ref();
        let inner = tokenizers::Tokenizer::from_file(path).map_err(|e| {
            Error::Invalid(format!("tokenizer: {}: cannot read: {e}", path.display()))
        })?;
        Ok(Tokenizer { inner })
    }

    /// The ids of `text`, with the special tokens the tokenizer adds (a beginning-of-sequence
    /// token, for Llama) when `add_special_tokens`.
    pub fn encode(&self, text: &str, add_special_tokens: bool) -> Result<Vec<u32>> {
        let enc = self
            .inner
            .encode(text, add_special_tokens)
            .map_err(|e| Error::Invalid(format!("tokenizer: cannot encode {text:?}: {e}")))?;
        Ok(enc.get_ids().to_vec())
    }

    /// The text of `ids`, special tokens left out.
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.inner
            .decode(ids, true)
            .map_err(|e| Error::Invalid(format!("tokenizer: cannot decode {} ids: {e}", ids.len())))
    }

    /// The id of a token's text (`"<|eot_id|>"`), if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }
}

/// Turns a stream of token ids into a stream of text: each [`StreamingDetokenizer::push`]
/// returns the text the new token completes. Text is held back while it ends inside a
/// multi-byte character (tokens of byte-level vocabularies split characters).
pub struct StreamingDetokenizer<'a> {
    tokenizer: &'a Tokenizer,
    ids: Vec<u32>,
    emitted: usize,
}

impl<'a> StreamingDetokenizer<'a> {
    /// Starts an empty stream.
    pub fn new(tokenizer: &'a Tokenizer) -> Self {
        StreamingDetokenizer {
            tokenizer,
            ids: Vec::new(),
            emitted: 0,
        }
    }

    /// Adds `id` and returns the text that is complete now and was not returned before.
    pub fn push(&mut self, id: u32) -> Result<String> {
        self.ids.push(id);
        let text = self.tokenizer.decode(&self.ids)?;
        if text.ends_with('\u{FFFD}') || text.len() < self.emitted {
            return Ok(String::new());
        }
        let new = text.get(self.emitted..).unwrap_or("").to_string();
        self.emitted = text.len();
        Ok(new)
    }
}
