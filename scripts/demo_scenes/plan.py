"""The demo pairs: clips, labels, descriptions, ids and frame numbers, and the stable seeds."""

from __future__ import annotations

import hashlib
import uuid
import zlib

import numpy as np

BASE_SEED = 2312_03849


def seed_of(*parts: object) -> int:
    """A stable 31-bit seed from strings (crc32 does not depend on PYTHONHASHSEED)."""
    text = "/".join(str(p) for p in (BASE_SEED,) + parts)
    return zlib.crc32(text.encode("utf-8")) & 0x7FFFFFFF


# (clip, [(label, kind, param, enriched description), ...]); order is the build order.
EGO4D_CLIPS = [
    ("demo4d_0001", [
        ("#C C opens the drawer", "drawer_open", None,
         "The person reaches the right hand to the handle of the wooden drawer below the counter and pulls it "
         "outward, revealing the cutlery inside."),
        ("#C C picks up the cup", "cup_pick", "red",
         "The person wraps the right hand around the red mug on the wooden counter and lifts it up off the surface."),
        ("#C C pours water into the glass", "pour", "blue",
         "The person tilts the blue bottle held in the right hand over the glass on the counter, and water flows in "
         "until the glass is nearly full."),
    ]),
    ("demo4d_0002", [
        ("#C C turns on the tap", "tap_on", None,
         "The person lifts the lever of the kitchen tap with the right hand, and a stream of water starts running "
         "into the steel sink."),
        ("#C C washes the pan", "wash_pan", None,
         "The person holds the frying pan by its handle with the left hand under the running water and scrubs it "
         "with a yellow sponge in the right hand, covering it in soap foam."),
    ]),
    ("demo4d_0003", [
        ("#C C cuts the tomato with the knife", "cut_tomato", None,
         "The person holds the tomato on the cutting board with the left hand and slices through it with the knife "
         "in the right hand, splitting it into two halves."),
        ("#C C puts down the knife", "put_knife", None,
         "The person lowers the knife held in the right hand, lays it flat on the cutting board next to the tomato "
         "halves and lets go of the handle."),
        ("#C C removes the lid from the pot", "remove_lid", "red",
         "The person grasps the knob of the lid on the red pot with the right hand and lifts the lid off, exposing "
         "the steaming soup inside."),
    ]),
    ("demo4d_0004", [
        ("#C C opens the cabinet", "door_open", None,
         "The person grips the handle of the white cabinet door under the counter with the right hand and swings it "
         "open, showing the jars on the shelf inside."),
        ("#C C picks up a plate", "plate_take", "white",
         "The person grabs the rim of the top plate on the stack with the right hand and lifts it up off the "
         "counter."),
    ]),
    ("demo4d_0005", [
        ("#C C switches on the light", "light_on", None,
         "The person presses the light switch on the wall with the right index finger, and the lights under the "
         "cabinets come on and brighten the kitchen."),
        ("#C C closes the drawer", "drawer_close", None,
         "The person pushes the open drawer with the right hand until it slides shut into the cabinet."),
    ]),
    ("demo4d_0006", [
        ("#C C opens the fridge", "fridge_open", None,
         "The person pulls the handle of the steel fridge door with the right hand and swings the door open, "
         "revealing the lit shelves with bottles and food inside."),
        ("#C C wipes the counter with the cloth", "wipe", None,
         "The person presses a blue cloth on the dark countertop with the right hand and wipes it across, clearing "
         "away the crumbs and stains."),
    ]),
]

EPIC_CLIPS = [
    ("P90_01", [
        ("open cupboard", "door_open", None,
         "The person takes hold of the cupboard door handle with the right hand and pulls the door open, exposing "
         "the jars and tins stored on the shelf."),
        ("take plate", "plate_take", "cream",
         "The person reaches out with the right hand, grips the rim of the top plate on the stack and raises it "
         "from the worktop."),
        ("put down cup", "cup_put", "green",
         "The person lowers the green mug held in the right hand and sets it down on the worktop, then opens the "
         "hand to let go of it."),
    ]),
    ("P90_02", [
        ("turn on tap", "tap_on", None,
         "The person lifts the tap lever with the right hand and water begins to pour from the spout into the sink."),
        ("wash pan", "wash_pan", None,
         "The person scrubs the frying pan with a sponge under the running tap while holding its handle with the "
         "left hand, and soapy foam spreads over the pan."),
    ]),
    ("P90_03", [
        ("cut tomato", "cut_tomato", None,
         "The person steadies the tomato on the chopping board with the left hand and cuts through it with the "
         "knife in the right hand, leaving two halves."),
        ("put down knife", "put_knife", None,
         "The person places the knife from the right hand down onto the chopping board and moves the hand away."),
        ("remove lid", "remove_lid", "steel",
         "The person lifts the lid off the saucepan by its knob with the right hand, revealing the food cooking "
         "inside."),
    ]),
    ("P90_04", [
        ("pour water", "pour", "teal",
         "The person tips the bottle in the right hand over the glass so that water pours in and the level in the "
         "glass rises."),
        ("turn off tap", "tap_off", None,
         "The person pushes the tap lever down with the right hand and the running water stops."),
    ]),
    ("P91_01", [
        ("open fridge", "fridge_open", None,
         "The person grabs the fridge handle with the right hand and pulls the door open, so the lit shelves and "
         "food inside come into view."),
        ("close fridge", "fridge_close", None,
         "The person pushes the open fridge door with the right hand and swings it shut, hiding the shelves inside."),
    ]),
    ("P91_02", [
        ("open drawer", "drawer_open", None,
         "The person hooks the right hand around the drawer handle and pulls the drawer out toward the body, "
         "showing the utensils inside."),
        ("turn on light", "light_on", None,
         "The person flicks the wall switch up with the right index finger and the kitchen lights come on."),
    ]),
]


def ego4d_action_id(clip, idx):
    h = hashlib.sha256(f"egobench-demo/{clip}/{idx}".encode()).digest()
    return str(uuid.UUID(bytes=h[:16], version=4))


def pair_plan(domain):
    """Yield (clip, action_id, label, kind, param, description, in_frame, out_frame)."""
    clips = EGO4D_CLIPS if domain == "ego4d" else EPIC_CLIPS
    for clip, actions in clips:
        rng = np.random.RandomState(seed_of(domain, clip, "frames"))
        frame = 200 + int(rng.randint(0, 400))
        narration = 3 + int(rng.randint(0, 10))
        for idx, (label, kind, param, desc) in enumerate(actions):
            if domain == "ego4d":
                aid = ego4d_action_id(clip, idx)
                pnr = frame + 45 + int(rng.randint(0, 60))
                f_in, f_out = pnr - 15, pnr          # input at PRE-15, target at PNR
                frame = pnr + 120 + int(rng.randint(0, 600))
            else:
                aid = f"{clip}_{narration}"
                start = frame + int(rng.randint(30, 300))
                stop = start + 60 + int(rng.randint(0, 240))
                f_in = start - 15                     # 0.25 s before the start at 60 fps
                f_out = start + int(0.6 * (stop - start))
                frame = stop
                narration += 1 + int(rng.randint(0, 12))
            yield clip, aid, label, kind, param, desc, f_in, f_out
