"""The diffusers backend: one module per task, sharing `pipelines.PipelineManager`.

Nothing here is imported until a job needs it; torch/diffusers load lazily.
"""
