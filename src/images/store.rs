//! The latest camera frame, and its age check.

use super::ImageError;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

/// The pixels of a frame as they arrived.
#[derive(Debug, Clone, PartialEq)]
pub enum Pixels {
    /// `sensor_msgs/msg/Image`: `height` rows of `step` bytes each.
    Raw { encoding: String, width: u32, height: u32, step: u32, data: Vec<u8> },
    /// `sensor_msgs/msg/CompressedImage`: `format` (e.g. `jpeg`, `png`, `rgb8; jpeg compressed bgr8`)
    /// and the file bytes.
    Compressed { format: String, data: Vec<u8> },
}

/// One camera frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Frame {
    /// The topic it came from (for error messages).
    pub topic: String,
    pub pixels: Pixels,
    /// `header.stamp`; `None` when the stamp is zero (the camera did not stamp it).
    pub stamp: Option<SystemTime>,
    /// When the node received it.
    pub received: SystemTime,
}

impl Frame {
    /// Age at `now`: from the header stamp, or from the receive time when the stamp is zero.
    /// A stamp in the future (clock skew) counts as age 0.
    pub fn age(&self, now: SystemTime) -> Duration {
        now.duration_since(self.stamp.unwrap_or(self.received)).unwrap_or(Duration::ZERO)
    }

    /// `header.stamp` (`sec`, `nanosec`) as a time; zero means "not stamped".
    pub fn stamp_from(sec: i32, nanosec: u32) -> Option<SystemTime> {
        if sec == 0 && nanosec == 0 {
            return None;
        }
        let since_epoch = Duration::new(sec.unsigned_abs().into(), nanosec);
        if sec >= 0 {
            SystemTime::UNIX_EPOCH.checked_add(since_epoch)
        } else {
            SystemTime::UNIX_EPOCH.checked_sub(since_epoch)
        }
    }
}

/// The latest frame of the camera topics (shared by the subscriptions and the requests).
#[derive(Debug, Default)]
pub struct FrameStore {
    /// The configured topics, for "no frame yet on ..." ("" = none configured).
    topics: String,
    latest: Mutex<Option<Arc<Frame>>>,
}

impl FrameStore {
    /// A store for frames of `topics` (their names, shown in errors).
    pub fn new(topics: &[&str]) -> FrameStore {
        let names: Vec<&str> = topics.iter().copied().filter(|t| !t.is_empty()).collect();
        FrameStore { topics: names.join(" and "), latest: Mutex::new(None) }
    }

    /// Replaces the latest frame.
    pub fn put(&self, frame: Frame) {
        *self.latest.lock().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(frame));
    }

    /// The latest frame if it is at most `max_age` old at `now`.
    pub fn latest(&self, max_age: Duration, now: SystemTime) -> Result<Arc<Frame>, ImageError> {
        if self.topics.is_empty() {
            return Err(ImageError::NoCamera);
        }
        let frame = self.latest.lock().unwrap_or_else(|e| e.into_inner()).clone();
        let frame = frame.ok_or_else(|| ImageError::NoFrame { topics: self.topics.clone() })?;
        let age = frame.age(now);
        if age > max_age {
            return Err(ImageError::TooOld { topic: frame.topic.clone(), age, max_age });
        }
        Ok(frame)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(stamp: Option<SystemTime>, received: SystemTime) -> Frame {
        Frame { topic: "/cam/image_raw".into(), pixels: Pixels::Compressed { format: "jpeg".into(), data: vec![] }, stamp, received }
    }

    #[test]
    fn age_is_from_the_stamp_else_from_receipt() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let now = t0 + Duration::from_secs(5);
        assert_eq!(frame(Some(t0), now).age(now), Duration::from_secs(5));
        assert_eq!(frame(None, t0 + Duration::from_secs(2)).age(now), Duration::from_secs(3));
        assert_eq!(frame(Some(now + Duration::from_secs(1)), now).age(now), Duration::ZERO);
        assert_eq!(Frame::stamp_from(0, 0), None);
        assert_eq!(Frame::stamp_from(1_700_000_000, 5), Some(t0 + Duration::from_nanos(5)));
        assert!(Frame::stamp_from(-1, 0).is_some());
    }

    #[test]
    fn latest_names_the_topic_and_the_age() {
        let t0 = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        assert_eq!(FrameStore::new(&["", ""]).latest(Duration::from_secs(2), t0), Err(ImageError::NoCamera));
        let store = FrameStore::new(&["/cam/image_raw", ""]);
        let none = store.latest(Duration::from_secs(2), t0).unwrap_err();
        assert!(none.to_string().contains("no camera frame received yet on /cam/image_raw"), "{none}");
        store.put(frame(Some(t0), t0));
        assert!(store.latest(Duration::from_secs(2), t0 + Duration::from_millis(1500)).is_ok());
        let old = store.latest(Duration::from_secs(2), t0 + Duration::from_millis(3500)).unwrap_err();
        assert_eq!(old.to_string(), "the latest camera frame on /cam/image_raw is 3.5s old, older than image_max_age_s (2.0s): \
                                     is the camera still publishing (and are the clocks in sync)?");
    }
}
