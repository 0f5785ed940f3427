"""Model definitions, fitting and evaluation for each of Orchard's demo models."""
