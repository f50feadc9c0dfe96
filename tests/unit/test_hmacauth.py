"""Authenticated adverts: the draft's wire vectors, the codec around the trailer, replay and rotation.

The two known-answer images are the appendix vectors of
draft-cassen-vrrp-auth-hmac, as keepalived 2.4's own test suite carries them
(key 00..1f, VRID 51, priority 200, sequence 0x6800000080000000): matching
them byte for byte is what lets a keepalived with ``auth_hmac`` and keepvip
authenticate each other. Everything time-dependent runs under a fake clock
passed in as ``now``.
"""

from __future__ import annotations

import base64
import re
from ipaddress import IPv4Address, IPv6Address

import pytest

from keepvip_agent.kube.secretkeys import keyring_of
from keepvip_agent.vrrp import hmacauth
from keepvip_agent.vrrp.authstate import (
    AdvertAuth,
    AuthSettings,
    Keyring,
    KeyringError,
    Mode,
    default_window,
    parse_keyring,
)
from keepvip_agent.vrrp.packet import (
    Advertisement,
    DropReason,
    PacketError,
    decode,
    finish,
    unsummed,
)

KEY = bytes(range(32))
SEQ = 0x6800000080000000
T_SEQ = 0x68000000 + 0.5  # the wall clock at which SEQ is "now"
SRC4 = IPv4Address("198.51.100.10")
SRC6 = IPv6Address("fe80::10")
DST6 = IPv6Address("fe80::20")
V4_IMAGE = bytes.fromhex(
    "3133c80100644402c00002640101000068000000800000001b84bc4e8e43892dc6d98448f8ee2265"
)
V6_IMAGE = bytes.fromhex(
    "3133c8010064a2e9fe800000000000000000000000000100"
    "010100006800000080000000c8c56146ebfd66ee10ec4d8186461b78"
)


def _auth(
    *,
    keys: dict[int, bytes] | None = None,
    active: int = 1,
    mode: Mode = Mode.ENFORCE,
    time_mode: bool = True,
    window: float = 5.0,
    grace: float = 60.0,
    vrid: int = 51,
) -> AdvertAuth:
    return AdvertAuth(
        3,
        vrid,
        AuthSettings(mode, time_mode, window, grace),
        Keyring(keys or {1: KEY}, active),
    )


@pytest.mark.parametrize(
    ("image", "pdu_len", "source"), [(V4_IMAGE, 12, SRC4), (V6_IMAGE, 24, SRC6)]
)
def test_draft_vectors_verify_and_sign_byte_for_byte(
    image: bytes, pdu_len: int, source: IPv4Address | IPv6Address
) -> None:
    pdu, trailer = image[:pdu_len], image[pdu_len:]
    pseudo = hmacauth.pseudo_header(3, 51, source)
    assert hmacauth.mac_matches(KEY, pseudo, pdu, trailer)
    assert hmacauth.sign(pdu, pseudo, 1, KEY, SEQ) == trailer
    t = hmacauth.parse_trailer(trailer)
    assert (t.ext_type, t.key_id, t.reserved, t.sequence) == (1, 1, 0, SEQ)


def test_ipv6_vector_decodes_with_the_checksum_over_the_trailer() -> None:
    adv = decode(V6_IMAGE, SRC6, DST6)
    assert (adv.vrid, adv.priority, adv.interval_cs) == (51, 200, 100)
    assert adv.addresses == (IPv6Address("fe80::100"),)
    assert adv.pdu == V6_IMAGE[:24] and adv.trailer == V6_IMAGE[24:]
    # and our encoder writes the same bytes, checksum included
    ours = Advertisement(3, 51, 200, 100, (IPv6Address("fe80::100"),))
    assert finish(unsummed(ours, SRC6), SRC6, DST6, V6_IMAGE[24:]) == V6_IMAGE


def test_ipv4_checksum_covers_the_pdu_only() -> None:
    adv = Advertisement(3, 51, 200, 100, (IPv4Address("192.0.2.100"),))
    dst = IPv4Address("224.0.0.18")
    auth = _auth()
    pdu = unsummed(adv, SRC4)
    wire = finish(pdu, SRC4, dst, auth.seal(pdu, SRC4, T_SEQ))
    assert wire[:12] == finish(pdu, SRC4, dst)  # same checksum as unsigned
    got = decode(wire, SRC4, dst)
    assert got.trailer == wire[12:] and got.pdu[:6] == pdu[:6]
    _auth().check(got.pdu, got.trailer, SRC4, T_SEQ)


def test_version_2_carries_the_trailer_after_its_authentication_data() -> None:
    adv = Advertisement(2, 51, 200, 100, (IPv4Address("192.0.2.100"),), 0, bytes(8))
    dst = IPv4Address("224.0.0.18")
    sender = AdvertAuth(2, 51, AuthSettings(), Keyring({1: KEY}, 1))
    pdu = unsummed(adv, SRC4)
    assert len(pdu) == 20  # header, one address, 8 bytes of (empty) authentication data
    wire = finish(pdu, SRC4, dst, sender.seal(pdu, SRC4, T_SEQ))
    got = decode(wire, SRC4, dst)
    assert (got.version, got.priority, got.pdu, got.trailer) == (2, 200, wire[:20], wire[20:])
    AdvertAuth(2, 51, AuthSettings(), Keyring({1: KEY}, 1)).check(got.pdu, got.trailer, SRC4, T_SEQ)
    with pytest.raises(PacketError) as err:  # the VRRP version is bound into the HMAC
        _auth().check(got.pdu, got.trailer, SRC4, T_SEQ)
    assert err.value.reason is DropReason.AUTH_BAD_HMAC


@pytest.mark.parametrize(
    ("offset", "reason"),
    [
        (2, DropReason.AUTH_BAD_HMAC),  # priority
        (5, DropReason.AUTH_BAD_HMAC),  # advert interval
        (23, DropReason.AUTH_BAD_HMAC),  # the VIP
        (24, DropReason.AUTH_MALFORMED),  # ext type
        (25, DropReason.AUTH_UNKNOWN_KEY),  # key id
        (26, DropReason.AUTH_MALFORMED),  # reserved
        (28, DropReason.AUTH_BAD_HMAC),  # seconds (low bit: still in no window; monotonic)
        (34, DropReason.AUTH_BAD_HMAC),  # counter
        (36, DropReason.AUTH_BAD_HMAC),  # the HMAC
        (6, None),  # the checksum is not signed
    ],
)
def test_one_flipped_bit_is_refused_for_its_reason(offset: int, reason: DropReason | None) -> None:
    image = bytearray(V6_IMAGE)
    image[offset] ^= 0x01
    auth = _auth(time_mode=False)
    if reason is None:
        auth.check(bytes(image[:24]), bytes(image[24:]), SRC6, 0)
        return
    with pytest.raises(PacketError) as err:
        auth.check(bytes(image[:24]), bytes(image[24:]), SRC6, 0)
    assert err.value.reason is reason


def test_the_pseudo_header_binds_source_and_vrid() -> None:
    for auth, source in ((_auth(time_mode=False), DST6), (_auth(time_mode=False, vrid=52), SRC6)):
        with pytest.raises(PacketError) as err:
            auth.check(V6_IMAGE[:24], V6_IMAGE[24:], source, 0)
        assert err.value.reason is DropReason.AUTH_BAD_HMAC


def _signed(auth: AdvertAuth, now: float, priority: int = 200) -> tuple[bytes, bytes]:
    pdu = unsummed(Advertisement(3, 51, priority, 100, (IPv4Address("192.0.2.100"),)), SRC4)
    return pdu, auth.seal(pdu, SRC4, now)


def _reason(auth: AdvertAuth, pdu: bytes, trailer: bytes, now: float) -> DropReason | None:
    try:
        auth.check(pdu, trailer, SRC4, now)
    except PacketError as exc:
        return exc.reason
    return None


def test_a_replayed_advert_is_refused_and_the_mark_moves_only_on_verified_adverts() -> None:
    sender, receiver = _auth(), _auth()
    first = _signed(sender, 1000.0)
    second = _signed(sender, 1000.1)
    assert _reason(receiver, *first, 1000.2) is None
    assert _reason(receiver, *second, 1000.2) is None
    assert _reason(receiver, *first, 1000.3) is DropReason.AUTH_REPLAY
    assert _reason(receiver, *second, 1000.3) is DropReason.AUTH_REPLAY
    # a forged trailer with a far-ahead sequence does not move the mark
    forged = bytearray(_signed(sender, 1001.0)[1])
    forged[-1] ^= 0xFF
    assert _reason(receiver, first[0], bytes(forged), 1001.0) is DropReason.AUTH_BAD_HMAC
    assert _reason(receiver, *_signed(sender, 1000.9), 1001.0) is None


def test_time_mode_refuses_stale_and_future_stamps_before_the_hmac() -> None:
    sender, receiver = _auth(), _auth(window=5)
    old = _signed(sender, 1000.0)
    assert _reason(receiver, *old, 1006.0) is DropReason.AUTH_STALE
    future = _signed(_auth(), 2000.0)
    assert _reason(receiver, *future, 1990.0) is DropReason.AUTH_STALE
    # monotonic mode needs no shared clock
    assert _reason(_auth(time_mode=False), *old, 99999.0) is None


def test_send_sequence_grows_strictly_even_when_the_clock_does_not() -> None:
    auth = _auth()
    seqs = [auth.next_sequence(1000.0) for _ in range(3)]
    assert seqs == [hmacauth.clock_sequence(1000.0) + i for i in range(3)]
    assert auth.next_sequence(999.0) == seqs[-1] + 1  # a small step back: keep growing
    # a clock stepped back past the window: restart from the clock (time mode only)
    assert auth.next_sequence(900.0) == hmacauth.clock_sequence(900.0)
    mono = _auth(time_mode=False)
    mono.next_sequence(1000.0)
    assert mono.next_sequence(900.0) == hmacauth.clock_sequence(1000.0) + 1


def test_a_receiver_mark_stranded_past_the_window_expires() -> None:
    sender, receiver = _auth(), _auth()
    assert _reason(receiver, *_signed(sender, 5000.0), 5000.0) is None
    # the sender restarts with its clock an hour back; so did ours (NTP fixed both)
    assert _reason(receiver, *_signed(_auth(), 1400.0), 1400.0) is None


def test_rotation_accepts_the_old_key_for_the_grace_window_only() -> None:
    new_key = bytes(range(100, 132))
    sender_old, receiver = _auth(), _auth(grace=10)
    receiver.rekey(Keyring({2: new_key}, 2), 1000.0)
    assert _reason(receiver, *_signed(sender_old, 1005.0), 1005.0) is None
    assert _reason(receiver, *_signed(sender_old, 1011.0), 1011.0) is DropReason.AUTH_UNKNOWN_KEY
    sender_new = _auth(keys={2: new_key}, active=2)
    assert _reason(receiver, *_signed(sender_new, 1012.0), 1012.0) is None


def test_a_sender_keeps_its_previous_key_while_peers_pick_up_a_one_step_rotation() -> None:
    new_key = bytes(range(100, 132))
    early, late = _auth(grace=60), _auth(grace=60)
    early.rekey(Keyring({2: new_key}, 2), 1000.0)  # key 1 replaced by key 2 in one step
    # `late` reads the update 2 s later: until then it knows key 1 only, and `early` signs with 1
    assert early.signing_key(1002.0)[0] == 1
    assert _reason(late, *_signed(early, 1002.0), 1002.0) is None
    late.rekey(Keyring({2: new_key}, 2), 1002.0)
    assert early.signing_key(1009.9)[0] == 1
    assert early.signing_key(1010.0)[0] == 2  # SWITCH_DELAY after the change
    assert _reason(late, *_signed(early, 1010.5), 1010.5) is None
    assert _reason(early, *_signed(late, 1010.6), 1010.6) is None  # late still signs with 1
    assert _auth(grace=2).rekey(Keyring({2: new_key}, 2), 0.0) is None


def test_secret_data_to_keys() -> None:
    good = {"data": {"keys": base64.b64encode(f"key 3 hex:{KEY.hex()}".encode()).decode()}}
    assert keyring_of(good, "ns/k") == Keyring({3: KEY}, 3)
    for secret, message in [
        ({"data": {"other": "eA=="}}, "Secret ns/k has no data entry 'keys'"),
        ({}, "Secret ns/k has no data entry 'keys'"),
        ({"data": {"keys": "//79"}}, "Secret ns/k: 'keys' is not UTF-8 text"),
        (
            {"data": {"keys": base64.b64encode(b"key 1 short").decode()}},
            "Secret ns/k, entry 'keys': line 1: a key is 32 to 64 bytes, not 5",
        ),
    ]:
        with pytest.raises(KeyringError, match=f"^{re.escape(message)}$"):
            keyring_of(secret, "ns/k")


def test_new_bytes_under_the_same_id_retire_the_old_bytes_after_grace() -> None:
    new_key = bytes(range(100, 132))
    old_sender, receiver = _auth(), _auth(grace=10)
    receiver.rekey(Keyring({1: new_key}, 1), 1000.0)
    assert _reason(receiver, *_signed(old_sender, 1001.0), 1001.0) is None
    assert _reason(receiver, *_signed(old_sender, 1011.0), 1011.0) is DropReason.AUTH_BAD_HMAC


def test_modes_for_a_rollout() -> None:
    pdu, _ = _signed(_auth(), 1000.0)
    assert _reason(_auth(), pdu, b"", 1000.0) is DropReason.AUTH_MISSING
    assert _reason(_auth(mode=Mode.PERMISSIVE), pdu, b"", 1000.0) is None
    receive_only = _auth(mode=Mode.RECEIVE_ONLY)
    assert receive_only.seal(pdu, SRC4, 1000.0) == b""
    assert _reason(receive_only, *_signed(_auth(), 1000.0), 1000.0) is None


def test_keyring_text() -> None:
    ring = parse_keyring(
        f"# rotation in progress\nkey 1 hex:{KEY.hex()}\nkey 2 {'k' * 40}\nactive_key 2\n"
    )
    assert ring.keys == {1: KEY, 2: b"k" * 40} and ring.active == 2
    assert parse_keyring(f"key 7 hex:{KEY.hex()}").active == 7
    for text, message in [
        ("", "no 'key ID VALUE' line"),
        (f"key 1 hex:{KEY.hex()[:-2]}", "line 1: a key is 32 to 64 bytes, not 31"),
        (f"key 0 hex:{KEY.hex()}", "line 1: key id 0 is not in 1..255"),
        (f"key 1 hex:{KEY.hex()}\nkey 1 {'k' * 40}", "line 2: key id 1 is defined twice"),
        (f"key 1 hex:{KEY.hex()}\nactive_key 3", "active_key 3 is not defined"),
        (f"key 1 hex:{KEY.hex()}\nkey 2 {'k' * 40}", "several keys but no 'active_key ID' line"),
        ("key 1 hex:zz", "line 1: the hex: value is not hexadecimal"),
        ("secret", "line 1: expected 'key ID VALUE' or 'active_key ID'"),
    ]:
        with pytest.raises(KeyringError, match=f"^{message}$"):
            parse_keyring(text)


def test_default_window_follows_keepalived() -> None:
    assert default_window(0.1) == 5.0
    assert default_window(3.0) == 9.0
    assert default_window(200.0) == 300.0
