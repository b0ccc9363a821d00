"""The replay viewer: researchers watch a recorded episode or room again in the browser."""
