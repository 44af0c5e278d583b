//! The gRPC API's protobuf codec: prost's, except that a message which does not decode (a string
//! field that is not UTF-8, a truncated field) is the caller's mistake, `INVALID_ARGUMENT`, not
//! `INTERNAL`. `build.rs` points the generated service and client at it.

use prost::Message;
use tonic::codec::{BufferSettings, DecodeBuf};
use tonic::{Code, Status};
use tonic_prost::{ProstCodec, ProstDecoder, ProstEncoder};

/// [`ProstCodec`] with decode failures mapped to `INVALID_ARGUMENT`.
#[derive(Debug, Clone)]
pub struct Codec<T, U>(ProstCodec<T, U>);

impl<T, U> Default for Codec<T, U> {
    fn default() -> Self {
        Self(ProstCodec::default())
    }
}

impl<T, U> tonic::codec::Codec for Codec<T, U>
where
    T: Message + Send + 'static,
    U: Message + Default + Send + 'static,
{
    type Encode = T;
    type Decode = U;
    type Encoder = ProstEncoder<T>;
    type Decoder = Decoder<U>;

    fn encoder(&mut self) -> Self::Encoder {
        tonic::codec::Codec::encoder(&mut self.0)
    }

    fn decoder(&mut self) -> Self::Decoder {
        Decoder(tonic::codec::Codec::decoder(&mut self.0))
    }
}

/// Decodes with prost; a decode error names the problem and asks for a valid message.
#[derive(Debug, Clone)]
pub struct Decoder<U>(ProstDecoder<U>);

impl<U: Message + Default> tonic::codec::Decoder for Decoder<U> {
    type Item = U;
    type Error = Status;

    fn decode(&mut self, buf: &mut DecodeBuf<'_>) -> Result<Option<U>, Status> {
        tonic::codec::Decoder::decode(&mut self.0, buf).map_err(|s| {
            // prost reports every decode failure as INTERNAL; nothing else in decoding is.
            if s.code() == Code::Internal {
                Status::invalid_argument(format!(
                    "the message is not valid protobuf for this method: {} (how to fix: send strings as UTF-8 and encode with the portcullis.v1 schema)",
                    s.message()
                ))
            } else {
                s
            }
        })
    }

    fn buffer_settings(&self) -> BufferSettings {
        tonic::codec::Decoder::buffer_settings(&self.0)
    }
}
