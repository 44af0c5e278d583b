//! The canonical text written in one pass, without building a `serde_json::Value` first: the
//! value is serialized as usual, and each object whose keys did not arrive in code-point order
//! has its members moved into that order as it closes. Anything this cannot place exactly as
//! the `Value` route would (a key that needed escaping, a repeated key, an `f32` or 128-bit
//! number, a raw fragment) answers `None`, and the caller takes that route instead.

use std::io;

use serde::Serialize;
use serde_json::ser::{CharEscape, CompactFormatter, Formatter};

/// The canonical text of `value`, or `None` where only the `Value` route is known to be exact.
pub(super) fn write<T: Serialize + ?Sized>(value: &T) -> Option<String> {
    let mut state = State::default();
    let mut ser = serde_json::Serializer::with_formatter(Bypassed, Canonical { state: &mut state });
    if value.serialize(&mut ser).is_err() || state.inexact || !state.frames.is_empty() {
        return None;
    }
    String::from_utf8(state.out).ok()
}

/// One member of an open object: where its key starts (the opening quote), where the key ends
/// (after the closing quote) and where its value ends, as positions in `State::out`.
#[derive(Debug, Clone, Copy)]
struct Member {
    start: usize,
    key_end: usize,
    end: usize,
}

/// An open object: its members are `State::members[first..]`.
#[derive(Debug)]
struct Frame {
    first: usize,
    /// Whether every key so far came after the one before it.
    in_order: bool,
    /// The member being written: its start, then its key's end.
    start: usize,
    key_end: usize,
}

#[derive(Debug, Default)]
struct State {
    out: Vec<u8>,
    frames: Vec<Frame>,
    /// The members of every open object, innermost last (an inner object closes, and drops its
    /// members, before the outer one writes its next).
    members: Vec<Member>,
    /// Where an out-of-order object's members are copied while they are put back in order.
    scratch: Vec<u8>,
    in_key: bool,
    inexact: bool,
}

impl State {
    fn key(&self, m: &Member) -> &[u8] {
        // Between the quotes: with no escapes in it, the key's own bytes.
        self.out.get(m.start + 1..m.key_end - 1).unwrap_or_default()
    }

    fn close_object(&mut self) {
        let Some(frame) = self.frames.pop() else {
            self.inexact = true;
            return;
        };
        if !frame.in_order {
            self.reorder(frame.first);
        }
        self.members.truncate(frame.first);
    }

    /// Moves the members from `first` on into key order, in place in `out`.
    fn reorder(&mut self, first: usize) {
        let mut members = std::mem::take(&mut self.members);
        let list = members.get_mut(first..).unwrap_or_default();
        list.sort_by(|a, b| self.key(a).cmp(self.key(b)));
        // `Value` keeps one member per key (the last); writing both would not be its text.
        if list.windows(2).any(|w| self.key(&w[0]) == self.key(&w[1])) {
            self.inexact = true;
        }
        if let Some(begin) = list.iter().map(|m| m.start).min() {
            self.scratch.clear();
            self.scratch
                .extend_from_slice(self.out.get(begin..).unwrap_or_default());
            self.out.truncate(begin);
            for (i, m) in list.iter().enumerate() {
                if i > 0 {
                    self.out.push(b',');
                }
                self.out.extend_from_slice(
                    self.scratch
                        .get(m.start - begin..m.end - begin)
                        .unwrap_or_default(),
                );
            }
        }
        self.members = members;
    }
}

/// The writer `serde_json` is handed. Every byte goes through [`Canonical`] into `State::out`;
/// a write reaching here means a formatter method was left to its default, and the text would
/// miss it, so it fails the serialization (and the caller takes the `Value` route).
struct Bypassed;

impl io::Write for Bypassed {
    fn write(&mut self, _buf: &[u8]) -> io::Result<usize> {
        Err(io::Error::other("canonical writer bypassed"))
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

/// Writes as `CompactFormatter` does, into `State::out`, noting where objects' members are.
struct Canonical<'a> {
    state: &'a mut State,
}

impl Canonical<'_> {
    fn inexact(&mut self) -> io::Result<()> {
        self.state.inexact = true;
        Ok(())
    }
}

macro_rules! compact {
    ($($method:ident($($arg:ident: $ty:ty),*);)*) => {
        $(
            fn $method<W: ?Sized + io::Write>(&mut self, _w: &mut W $(, $arg: $ty)*) -> io::Result<()> {
                CompactFormatter.$method(&mut self.state.out $(, $arg)*)
            }
        )*
    };
}

impl Formatter for Canonical<'_> {
    compact! {
        write_null();
        write_bool(value: bool);
        write_i8(value: i8);
        write_i16(value: i16);
        write_i32(value: i32);
        write_i64(value: i64);
        write_u8(value: u8);
        write_u16(value: u16);
        write_u32(value: u32);
        write_u64(value: u64);
        begin_string();
        end_string();
        write_string_fragment(fragment: &str);
        write_byte_array(value: &[u8]);
        begin_array();
        end_array();
        begin_array_value(first: bool);
        end_array_value();
    }

    fn write_f64<W: ?Sized + io::Write>(&mut self, _w: &mut W, value: f64) -> io::Result<()> {
        if self.state.in_key {
            // A float key's text is written by a different routine on the `Value` route.
            return self.inexact();
        }
        CompactFormatter.write_f64(&mut self.state.out, value)
    }

    // `Value` widens an `f32` to `f64` (0.1 becomes 0.10000000149011612) and refuses 128-bit
    // numbers outside 64 bits; that route says what they become.
    fn write_f32<W: ?Sized + io::Write>(&mut self, _w: &mut W, _v: f32) -> io::Result<()> {
        self.inexact()
    }
    fn write_i128<W: ?Sized + io::Write>(&mut self, _w: &mut W, _v: i128) -> io::Result<()> {
        self.inexact()
    }
    fn write_u128<W: ?Sized + io::Write>(&mut self, _w: &mut W, _v: u128) -> io::Result<()> {
        self.inexact()
    }
    fn write_number_str<W: ?Sized + io::Write>(&mut self, _w: &mut W, _v: &str) -> io::Result<()> {
        self.inexact()
    }
    fn write_raw_fragment<W: ?Sized + io::Write>(
        &mut self,
        _w: &mut W,
        _fragment: &str,
    ) -> io::Result<()> {
        self.inexact()
    }

    fn write_char_escape<W: ?Sized + io::Write>(
        &mut self,
        _w: &mut W,
        char_escape: CharEscape,
    ) -> io::Result<()> {
        if self.state.in_key {
            // Keys are ordered by their characters, not their escaped text.
            self.state.inexact = true;
        }
        CompactFormatter.write_char_escape(&mut self.state.out, char_escape)
    }

    fn begin_object<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.state.frames.push(Frame {
            first: self.state.members.len(),
            in_order: true,
            start: 0,
            key_end: 0,
        });
        self.state.out.push(b'{');
        Ok(())
    }

    fn end_object<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.state.close_object();
        self.state.out.push(b'}');
        Ok(())
    }

    fn begin_object_key<W: ?Sized + io::Write>(
        &mut self,
        _w: &mut W,
        first: bool,
    ) -> io::Result<()> {
        if !first {
            self.state.out.push(b',');
        }
        let start = self.state.out.len();
        match self.state.frames.last_mut() {
            Some(frame) => frame.start = start,
            None => self.state.inexact = true,
        }
        self.state.in_key = true;
        Ok(())
    }

    fn end_object_key<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.state.in_key = false;
        let key_end = self.state.out.len();
        let Some(frame) = self.state.frames.last_mut() else {
            return self.inexact();
        };
        frame.key_end = key_end;
        let current = Member {
            start: frame.start,
            key_end,
            end: key_end,
        };
        let first = frame.first;
        if frame.in_order
            && let Some(last) = self.state.members.get(first..).and_then(|m| m.last())
            && self.state.key(last) >= self.state.key(&current)
        {
            if let Some(frame) = self.state.frames.last_mut() {
                frame.in_order = false;
            }
        }
        Ok(())
    }

    fn begin_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        self.state.out.push(b':');
        Ok(())
    }

    fn end_object_value<W: ?Sized + io::Write>(&mut self, _w: &mut W) -> io::Result<()> {
        let end = self.state.out.len();
        let Some(frame) = self.state.frames.last() else {
            return self.inexact();
        };
        let member = Member {
            start: frame.start,
            key_end: frame.key_end,
            end,
        };
        self.state.members.push(member);
        Ok(())
    }
}
