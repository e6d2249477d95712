//! Text to IPA phonemes with espeak-ng, the way Piper phonemises: the system's
//! `libespeak-ng` loaded at run time (Debian package `espeak-ng`; `AIGC_ESPEAK_LIB` names
//! another file), one clause per `espeak_TextToPhonemes` call, NFD-decomposed, language-switch
//! marks dropped, and the clause's punctuation put back (`. ? !` end a sentence; `, : ;` are
//! followed by a space), which is what piper-phonemize's patched espeak returns directly.

use std::ffi::{CStr, CString, c_char, c_int, c_void};
use std::sync::{Mutex, OnceLock};

use aigc_core::{Error, Result};
use unicode_normalization::UnicodeNormalization;

type Initialize = unsafe extern "C" fn(c_int, c_int, *const c_char, c_int) -> c_int;
type SetVoiceByName = unsafe extern "C" fn(*const c_char) -> c_int;
type TextToPhonemes = unsafe extern "C" fn(*mut *const c_void, c_int, c_int) -> *const c_char;

/// `espeakPHONEMES_IPA`.
const PHONEMES_IPA: c_int = 0x02;
/// `espeakCHARS_AUTO`.
const CHARS_AUTO: c_int = 0;
/// `AUDIO_OUTPUT_SYNCHRONOUS`: no audio device is opened.
const AUDIO_OUTPUT_SYNCHRONOUS: c_int = 2;

struct Library {
    _lib: libloading::Library,
    set_voice: SetVoiceByName,
    text_to_phonemes: TextToPhonemes,
    voice: Option<String>,
}

/// espeak-ng keeps global state: one loaded library per process, used under a lock.
static LIBRARY: OnceLock<std::result::Result<Mutex<Library>, String>> = OnceLock::new();

fn library() -> Result<&'static Mutex<Library>> {
    LIBRARY
        .get_or_init(|| {
            let name =
                std::env::var("AIGC_ESPEAK_LIB").unwrap_or_else(|_| "libespeak-ng.so.1".into());
            // SAFETY: loading espeak-ng runs its (trivial) initialisers; the symbols are
            // looked up with the signatures of espeak-ng's speak_lib.h.
            unsafe {
                let lib = libloading::Library::new(&name).map_err(|e| {
                    format!(
                        "cannot load {name} ({e}): install espeak-ng (Debian: apt-get install \
                         espeak-ng) or set AIGC_ESPEAK_LIB to the library's path"
                    )
                })?;
                let init: Initialize =
                    *lib.get(b"espeak_Initialize\0").map_err(|e| e.to_string())?;
                let set_voice: SetVoiceByName =
                    *lib.get(b"espeak_SetVoiceByName\0").map_err(|e| e.to_string())?;
                let text_to_phonemes: TextToPhonemes =
                    *lib.get(b"espeak_TextToPhonemes\0").map_err(|e| e.to_string())?;
                if init(AUDIO_OUTPUT_SYNCHRONOUS, 0, std::ptr::null(), 0) < 0 {
                    return Err(format!(
                        "espeak_Initialize failed in {name} (is espeak-ng-data installed?)"
                    ));
                }
                Ok(Mutex::new(Library { _lib: lib, set_voice, text_to_phonemes, voice: None }))
            }
        })
        .as_ref()
        .map_err(|e| Error::unsupported("espeak-ng", e.clone()))
}

/// Whether espeak-ng can be loaded here.
pub fn available() -> bool {
    library().is_ok()
}

/// The IPA phonemes of `text` in espeak-ng's `voice` (`en-us`), one string per sentence,
/// as Piper feeds its voices.
pub fn phonemize(text: &str, voice: &str) -> Result<Vec<String>> {
    let text = CString::new(text)
        .map_err(|_| Error::invalid_argument("text", "contains a NUL character"))?;
    let voice_c = CString::new(voice).map_err(|_| Error::invalid_argument("voice", voice))?;
    let mut lib = library()?.lock().unwrap_or_else(|p| p.into_inner());
    if lib.voice.as_deref() != Some(voice) {
        // SAFETY: a NUL-terminated string; espeak copies what it needs.
        if unsafe { (lib.set_voice)(voice_c.as_ptr()) } != 0 {
            return Err(Error::invalid_argument(
                "voice",
                format!("espeak-ng has no voice {voice:?}"),
            ));
        }
        lib.voice = Some(voice.to_string());
    }
    let bytes = text.as_bytes();
    let base = text.as_ptr() as usize;
    let mut ptr = text.as_ptr() as *const c_void;
    let mut clauses = Vec::new();
    while !ptr.is_null() {
        let start = ptr as usize - base;
        // SAFETY: ptr points into `text` (NUL-terminated, alive for the loop); espeak advances
        // it past the clause it read, or sets it to NULL at the end; the returned string is
        // espeak's own buffer, copied before the next call.
        let ipa = unsafe {
            let out = (lib.text_to_phonemes)(&mut ptr, CHARS_AUTO, PHONEMES_IPA);
            if out.is_null() {
                String::new()
            } else {
                CStr::from_ptr(out).to_string_lossy().into_owned()
            }
        };
        let end = if ptr.is_null() { bytes.len() } else { (ptr as usize - base).min(bytes.len()) };
        if end <= start && !ptr.is_null() {
            break; // no progress: stop rather than loop
        }
        clauses.push((ipa, String::from_utf8_lossy(&bytes[start.min(end)..end]).into_owned()));
    }
    Ok(sentences(&clauses))
}

/// Sentences from espeak's clauses: each clause's terminator is the last of `.?!,:;` in the
/// text it consumed (espeak reads one character past a clause).
fn sentences(clauses: &[(String, String)]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut current: Option<String> = None;
    for (ipa, consumed) in clauses {
        let s = current.get_or_insert_with(String::new);
        s.extend(strip_language_marks(ipa).nfd());
        let term = consumed.chars().rev().find(|c| ".?!,:;".contains(*c));
        if let Some(t) = term {
            s.push(t);
            if ",:;".contains(t) {
                s.push(' ');
            }
            if ".?!".contains(t) {
                out.extend(current.take());
            }
        }
    }
    out.extend(current);
    out
}

/// espeak's `(en)`...`(fr)` language-switch marks removed, as piper-phonemize does.
fn strip_language_marks(ipa: &str) -> String {
    let mut out = String::with_capacity(ipa.len());
    let mut depth = 0;
    for c in ipa.chars() {
        match c {
            '(' => depth += 1,
            ')' if depth > 0 => depth -= 1,
            _ if depth == 0 => out.push(c),
            _ => {}
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clauses_become_sentences() {
        let clauses = [
            ("həlˈoʊ".to_string(), "Hello, ".to_string()),
            ("wˈɜːld".to_string(), "world. T".to_string()),
            ("(fr)bɔ̃ʒˈuʁ(en)".to_string(), "Bonjour".to_string()),
        ];
        let s = sentences(&clauses);
        assert_eq!(s.len(), 2);
        assert_eq!(s[0], "həlˈoʊ, wˈɜːld.".nfd().collect::<String>());
        assert_eq!(s[1], "bɔ̃ʒˈuʁ".nfd().collect::<String>());
    }
}
