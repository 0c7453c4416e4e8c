"""Image and build names as BinderHub derives them, computed with the real `escapism`
package. Reads one JSON object per line on stdin ({"slug", "ref", "prefix"}) and writes
one JSON object per line on stdout ({"escaped", "image", "build"}).

The steps restate BINDERHUB.md section 3 (hash of the raw slug, escape, truncate, append
the hash, lower-case; `_` to `-` over the whole name); only escaping comes from escapism.
"""
import hashlib
import json
import string
import sys

import escapism

SAFE = set(string.ascii_letters + string.digits)


def escape(text):
    return escapism.escape(text, safe=SAFE, escape_char="-")


def safe_slug(raw, limit, hash_length=6):
    digest = hashlib.sha256(raw.encode("utf-8")).hexdigest()
    return "{}-{}".format(escape(raw)[: limit - hash_length - 1], digest[:hash_length]).lower()


def image_name(prefix, slug, ref):
    name = "{}{}:{}".format(prefix, safe_slug(slug, 255 - len(prefix)), ref)
    return name.replace("_", "-").lower()


def build_name(slug, ref, prefix="build-", limit=63):
    ref_part = safe_slug(ref, 6, 2)
    slug_part = safe_slug(slug, limit - len(ref_part) - 1 - len(prefix))
    return "{}{}-{}".format(prefix, slug_part, ref_part).lower()


for line in sys.stdin:
    case = json.loads(line)
    out = {
        "escaped": escape(case["slug"]),
        "image": image_name(case["prefix"], case["slug"], case["ref"]),
        "build": build_name(case["slug"], case["ref"]),
    }
    sys.stdout.write(json.dumps(out) + "\n")
