"""Calibration: real llama.cpp runs in a child process, synthetic models, fitted device factors."""
