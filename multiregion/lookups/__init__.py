"""Read-only lookups shared by the stages, `status` and the drill: how to find each of the stack's
resources again in AWS, and what they look like. Nothing here writes; no lookup imports a stage."""
