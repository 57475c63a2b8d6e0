"""The only place torch, diffusers and OpenCV's inpainting live. Heavy imports are lazy."""
