"""The life of a trail after it is written: sealing and verifying it, erasing values from it."""
