//! Camera subscriptions: `image_topic` (`sensor_msgs/msg/Image`) and `compressed_image_topic`
//! (`sensor_msgs/msg/CompressedImage`) feed the [`FrameStore`]; only the latest frame is kept.
//! Sensor-data QoS (best effort, keep last 5) matches both best-effort and reliable cameras.
//! Drained on the spin thread like the other inputs.

use super::StartError;
use crate::config::Config;
use crate::images::{Frame, FrameStore, Pixels};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use r2r::sensor_msgs::msg::{CompressedImage, Image};
use r2r::QosProfile;
use std::sync::Arc;
use std::time::SystemTime;

/// Subscribes the configured camera topics; returns their drain loops.
pub fn subscribe(node: &mut r2r::Node, config: &Config, store: &Arc<FrameStore>) -> Result<Vec<BoxFuture<'static, ()>>, StartError> {
    let mut loops = Vec::new();
    if !config.image_topic.is_empty() {
        let topic = config.image_topic.clone();
        let mut frames = node.subscribe::<Image>(&topic, QosProfile::sensor_data())?;
        let store = store.clone();
        loops.push(async move {
            while let Some(image) = frames.next().await {
                let pixels = Pixels::Raw { encoding: image.encoding, width: image.width, height: image.height, step: image.step, data: image.data };
                store.put(frame(&topic, pixels, image.header.stamp));
            }
        }.boxed());
    }
    if !config.compressed_image_topic.is_empty() {
        let topic = config.compressed_image_topic.clone();
        let mut frames = node.subscribe::<CompressedImage>(&topic, QosProfile::sensor_data())?;
        let store = store.clone();
        loops.push(async move {
            while let Some(image) = frames.next().await {
                store.put(frame(&topic, Pixels::Compressed { format: image.format, data: image.data }, image.header.stamp));
            }
        }.boxed());
    }
    Ok(loops)
}

fn frame(topic: &str, pixels: Pixels, stamp: r2r::builtin_interfaces::msg::Time) -> Frame {
    Frame { topic: topic.to_string(), pixels, stamp: Frame::stamp_from(stamp.sec, stamp.nanosec), received: SystemTime::now() }
}
