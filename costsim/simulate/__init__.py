"""The simulation stage (DESIGN section 4): a scenario and a fitted model in, cost out.

`traffic` lays out the horizon's expected requests and their spikes, `reliability` the retries
and cold starts, `prices` and `repricing` what a request costs under the scenario's pricing,
`deployments` what an API or a GPU pool charges, `inversion` and `engine` the per-class cost of
a bucket's requests without drawing each one, `forecast` the Monte Carlo over chunks of trials
and its bridge from the naive estimate, and `compare` the deployment options on common random
numbers.
"""
