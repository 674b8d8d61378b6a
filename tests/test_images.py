"""Camera frames to a vision model, on the real node: a test camera publishes real
sensor_msgs/msg/Image and CompressedImage messages; what the node sent to Ollama is read back
from the emulator's request log and the image decoded there (size and format from its header).
Errors (no camera, no frame yet, frame too old, unsupported encoding, a model without `vision`)
are error Responses, and no request reaches Ollama. Images never enter the history."""
from __future__ import annotations

import base64

import pytest
from sensor_msgs.msg import CompressedImage, Image

from camera import Camera, image_size, look, png_bytes, raw
from harness import wait_until
from helpers import SYSTEM, assistant, final_for, finished_bodies, history_pairs, user

EYEBOT = {"eyebot": {"capabilities": ["completion", "vision"], "reply": "I see something.", "vision_reply": "I see something."}}


@pytest.fixture
def camera(ros):
    made = []

    def make(ep, name, msg_type):
        made.append(Camera(ros, f"{ep.ns}/{name}", msg_type))
        wait_until(lambda: made[-1].pub.get_subscription_count() >= 1, 15, f"the node's {name} subscription")
        return made[-1]
    yield make
    for cam in made:
        cam.close(ros)


def sent_images(emu, n=1):
    """The images of every user message the node sent (once `n` requests finished), decoded."""
    return [base64.b64decode(i) for body in finished_bodies(emu, n) for m in body["messages"] if m["role"] == "user"
            for i in m.get("images") or []]


def test_raw_frame_round_trip_and_history_without_images(start_bridge, emu, camera, tmp_path):
    emu.set_models(EYEBOT)
    _, ep = start_bridge(model="eyebot", image_topic="camera/image_raw", history_dir=str(tmp_path))
    cam = camera(ep, "camera/image_raw", Image)
    cam.frame = raw("rgb8", 700, 350, 3)
    final = look(ep, "what do you see?", until_not="no camera frame received yet")
    assert final.error == "" and final.text == "I see something.", final
    [body] = finished_bodies(emu, 1)
    [image] = body["messages"][-1]["images"]
    assert image_size(base64.b64decode(image)) == ("jpeg", 672, 336), "shrunk to image_max_side, aspect kept"
    emu.clear_requests()
    ep.utter("s", "and now?")
    final_for(ep, "and now?")      # (look() may have left several finals: wait for this one)
    [body] = finished_bodies(emu, 1)
    assert body["messages"] == [SYSTEM, user("what do you see?"), assistant("I see something."), user("and now?")]
    assert history_pairs(tmp_path, "s") == [("what do you see?", "I see something."), ("and now?", "I see something.")]
    assert "base64" not in "".join(p.read_text() for p in tmp_path.iterdir()) and len(image) > 1000


def test_compressed_png_passes_through_and_a_large_one_is_resized(start_bridge, emu, camera):
    emu.set_models(EYEBOT)
    _, ep = start_bridge(model="eyebot", compressed_image_topic="camera/compressed", image_max_side=512)
    cam = camera(ep, "camera/compressed", CompressedImage)
    small = png_bytes(320, 240)
    cam.frame = CompressedImage(format="png", data=small)
    assert look(ep, "small", until_not="no camera frame received yet").error == ""
    assert sent_images(emu) == [small], "sent exactly as the camera compressed it"
    emu.clear_requests()
    cam.frame = CompressedImage(format="png", data=png_bytes(2000, 1000))
    wait_until(lambda: look(ep, "large").error == "" and image_size(sent_images(emu)[-1]) == ("png", 512, 256),
               15, "the large frame, resized as PNG")


def test_each_image_error_is_a_response_and_nothing_reaches_ollama(start_bridge, emu, camera):
    emu.set_models(EYEBOT)
    _, ep = start_bridge(model="eyebot", image_topic="camera/image_raw")
    final = look(ep, "anyone there?")
    assert final.done_reason == "error"
    assert final.error == "no camera frame received yet on camera/image_raw: is the camera publishing?"
    cam = camera(ep, "camera/image_raw", Image)
    cam.frame = Image(encoding="16UC1", width=4, height=4, step=8, data=bytes(32))
    final = look(ep, "depth?", until_not="no camera frame received yet")
    assert "encoding '16UC1' is not supported (supported: rgb8, bgr8, rgba8, bgra8, mono8" in final.error
    cam.frame, cam.stamp_age_s = raw("mono8", 64, 48, 1), 10.0
    final = look(ep, "old?", until_not="16UC1")
    assert "the latest camera frame on camera/image_raw is 10." in final.error
    assert "s old, older than image_max_age_s (2.0s)" in final.error
    cam.stamp_age_s = 0.0
    assert look(ep, "fresh?", until_not="old, older than").error == ""
    assert ep.set_model("llama3.2").success
    final = look(ep, "and with this model?")
    assert final.error.startswith("model 'llama3.2' cannot see images: /api/show lists no 'vision' capability"), final.error
    assert len(finished_bodies(emu, 1)) == 1, "only the fresh frame's request reached Ollama"


def test_no_camera_and_attach_never(start_bridge, emu):
    emu.set_models(EYEBOT)
    _, ep = start_bridge(model="eyebot")
    assert look(ep, "see?").error.startswith("an image was asked for, but no camera topic is set")
    _, ep2 = start_bridge(model="eyebot", attach_image="never", image_topic="camera/image_raw")
    final = look(ep2, "see?")
    assert final.error == "" and final.text == "I see something."
    assert sent_images(emu) == [], "attach_image never: answered without an image"


def test_attach_always_gives_speech_text_the_frame(start_bridge, emu, camera):
    emu.set_models(EYEBOT)
    _, ep = start_bridge(model="eyebot", attach_image="always", compressed_image_topic="camera/compressed")
    cam = camera(ep, "camera/compressed", CompressedImage)
    cam.frame = CompressedImage(format="png", data=png_bytes(64, 64))

    def said():
        before = len(ep.finals.snapshot())
        ep.say("what is in front of you?")
        return ep.wait_finals(before + 1)[before]
    wait_until(lambda: said().error == "", 15, "an answer with the frame")
    assert image_size(sent_images(emu)[-1]) == ("png", 64, 64)


def test_the_emulator_sees_the_decoded_size(start_bridge, emu, camera):
    seer = {"seer": {"capabilities": ["completion", "vision"], "vision_reply": "I see an image of {images}."}}
    emu.set_models(seer)
    _, ep = start_bridge(model="seer", image_topic="camera/image_raw")
    cam = camera(ep, "camera/image_raw", Image)
    cam.frame = raw("bgr8", 1280, 720, 3)
    final = look(ep, "what do you see?", until_not="no camera frame received yet")
    assert final.error == "" and "672x378 (jpeg)" in final.text, final
