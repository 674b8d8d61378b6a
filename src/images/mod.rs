//! Camera frames for vision models, without ROS.
//!
//! * `store`: [`FrameStore`] keeps the latest [`Frame`] of the camera topics (`image_topic`:
//!   `sensor_msgs/msg/Image`, `compressed_image_topic`: `sensor_msgs/msg/CompressedImage`) with
//!   its header stamp and receive time, and hands it out only if it is younger than
//!   `image_max_age_s`.
//! * `encode`: a frame → the base64 text of a JPEG or PNG whose longer side is at most
//!   `image_max_side` pixels, for a user message's `images` (Ollama decodes it with Go's
//!   `image.Decode`, which knows JPEG and PNG). Raw `rgb8`, `bgr8`, `rgba8`, `bgra8`, `mono8`
//!   become JPEG; compressed JPEG/PNG frames pass through unchanged, or are resized in their own
//!   format. Codecs and resizing are the `image` crate's.
//!
//! [`AttachImage`] is the `attach_image` parameter. Every failure is an [`ImageError`] whose text
//! says what to do; it becomes the request's error response.

mod encode;
mod store;

pub use encode::{encode_frame, EncodedImage, JPEG_QUALITY};
pub use store::{Frame, FrameStore, Pixels};

use std::time::Duration;

/// When a request gets the latest camera frame (parameter `attach_image`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttachImage {
    /// Never, even if an `Utterance` asks for it (the request is answered without it).
    Never,
    /// When the `Utterance` sets `attach_image` (the default).
    OnRequest,
    /// Every input, also `speech_text`.
    Always,
}

impl AttachImage {
    /// Parses `never`, `on_request` or `always`.
    pub fn parse(text: &str) -> Result<AttachImage, String> {
        match text.trim() {
            "never" => Ok(AttachImage::Never),
            "on_request" => Ok(AttachImage::OnRequest),
            "always" => Ok(AttachImage::Always),
            other => Err(format!("'{other}' is not one of never, on_request, always")),
        }
    }

    /// Whether an input that asked (`requested`) or not gets the frame.
    pub fn wants(self, requested: bool) -> bool {
        match self {
            AttachImage::Never => false,
            AttachImage::OnRequest => requested,
            AttachImage::Always => true,
        }
    }
}

/// Why no image could be attached. The `Display` text is the error response.
#[derive(Debug, Clone, PartialEq)]
pub enum ImageError {
    /// Neither `image_topic` nor `compressed_image_topic` is set.
    NoCamera,
    /// Nothing arrived yet on the configured topics.
    NoFrame { topics: String },
    /// The latest frame is older than `image_max_age_s`.
    TooOld { topic: String, age: Duration, max_age: Duration },
    /// An encoding or compressed format this node does not convert.
    Unsupported(String),
    /// The frame's bytes do not match its header (size, step) or do not decode.
    Corrupt { topic: String, detail: String },
}

impl std::fmt::Display for ImageError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ImageError::NoCamera => write!(f, "an image was asked for, but no camera topic is set (parameters image_topic or compressed_image_topic)"),
            ImageError::NoFrame { topics } => write!(f, "no camera frame received yet on {topics}: is the camera publishing?"),
            ImageError::TooOld { topic, age, max_age } => write!(f,
                "the latest camera frame on {topic} is {:.1}s old, older than image_max_age_s ({:.1}s): is the camera still publishing (and are the clocks in sync)?",
                age.as_secs_f64(), max_age.as_secs_f64()),
            ImageError::Unsupported(what) => write!(f, "{what}"),
            ImageError::Corrupt { topic, detail } => write!(f, "the camera frame on {topic} is unusable: {detail}"),
        }
    }
}

impl std::error::Error for ImageError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn attach_policy_parses_and_decides() {
        assert_eq!(AttachImage::parse(" on_request "), Ok(AttachImage::OnRequest));
        assert!(AttachImage::parse("sometimes").unwrap_err().contains("never, on_request, always"));
        assert!(!AttachImage::Never.wants(true));
        assert!(AttachImage::OnRequest.wants(true) && !AttachImage::OnRequest.wants(false));
        assert!(AttachImage::Always.wants(false));
    }
}
