"""Signal transforms: filtering, windowing, time-frequency images."""
