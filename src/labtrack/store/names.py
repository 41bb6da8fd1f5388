"""Friendly generated run names (adjective-animal-NNN), as users of MLflow expect."""

from __future__ import annotations

import random

_ADJECTIVES = (
    "agile amber bold brave bright calm clever cosmic crisp daring eager fancy fast fearless "
    "gentle glad golden grand happy honest jolly keen kind lively lucky mellow merry mighty "
    "nimble noble patient polite proud quick quiet rare rapid serene sharp shiny silent sleek "
    "smart snowy solid spry steady sunny swift tidy upbeat vivid warm wise witty zesty"
).split()
_ANIMALS = (
    "ant bat bear bee bison boar carp cat crab crane crow deer dingo dog dove duck eagle eel "
    "elk ferret finch fox frog gnu goat goose hare hawk heron horse ibis jay koala lark lemur "
    "lion lynx mole moose moth newt owl otter panda perch pig pony puma quail ram raven seal "
    "shark sheep slug snail snake squid stork swan tern toad trout wasp whale wolf wren yak zebra"
).split()


def generate_run_name() -> str:
    return f"{random.choice(_ADJECTIVES)}-{random.choice(_ANIMALS)}-{random.randint(0, 999)}"
