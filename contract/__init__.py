"""What the gateway and its clients share besides the protobuf messages.

proto/ is the wire contract; this package holds the rest of it that both
sides must agree on byte for byte (the signed receipt format). It imports
neither `gateway` nor `clients`: both import it.
"""
