// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title FlyTrap — topic ACLs, join fees and the audit trail of an MQTT proxy
/// @notice Topics are keyed by `topicId = keccak256(bytes(name))`, computed off-chain by the
///         proxy; the name itself is stored and emitted only once, at creation.
///         Actions: 0 = publish, 1 = subscribe.
/// @dev Storage layout, chosen for gas (see contracts/GAS.md):
///      - one `Topic` per id: slot 0 packs owner, sensitive flag, country count and which
///        fees are payable (read by every write path, so a free join never reads slot 1);
///        slot 1 packs both fees; countries are packed 16 per 32-byte word;
///      - one word per (topic, address) holds the publish and subscribe bits: all that
///        authorisation needs. Nothing is listed on chain: members and topics are listed by
///        readers from the `AclChanged` / `TopicCreated` events (flytrap's block index), so
///        an address new to a topic costs one fresh slot, not two;
///      - the owner's fee balance is stored as `amount + 1` once initialised, so it never goes
///        back to zero and a later credit never pays the 20k zero-to-nonzero SSTORE;
///      - an operator's flag and its audit high-water mark share one word.
contract FlyTrap {
    // ------------------------------------------------------------------ constants

    /// @notice Action code of publishing.
    uint8 internal constant PUB = 0;
    /// @notice Action code of subscribing.
    uint8 internal constant SUB = 1;
    /// @notice A fee equal to this value closes the action to self-service `join`: only the
    ///         owner's `grant` can add members. A fee of 0 means anyone may join for free.
    uint128 public constant JOIN_CLOSED = type(uint128).max;

    uint8 internal constant CHANGE_CREATED = 0;
    uint8 internal constant CHANGE_GRANT = 1;
    uint8 internal constant CHANGE_REVOKE = 2;
    uint8 internal constant CHANGE_JOIN = 3;
    uint8 internal constant CHANGE_UPDATED = 4;
    uint8 internal constant NO_ACTION = 255;

    // ------------------------------------------------------------------ types

    /// @notice One question of `checkBatch`.
    struct Query {
        bytes32 topicId;
        address who;
        uint8 action;
    }

    /// @notice One answer of `checkBatch`; an unknown topic or a bad action is not allowed.
    struct Answer {
        bool exists;
        bool allowed;
        bool sensitive;
        bytes2[] countries;
    }

    /// @notice A ban of an IP (IPv4 as IPv4-mapped IPv6) until `until` (Unix seconds).
    struct Ban {
        bytes16 ip;
        uint64 seq;
        uint64 until;
        uint32 failures;
        uint64 time;
    }

    /// @notice A client refused on `topicId` because its IP maps to `country`.
    struct WrongCountryRecord {
        address client;
        bytes32 topicId;
        bytes16 ip;
        bytes2 country;
        uint64 seq;
        uint64 time;
    }

    /// @notice A refused CONNECT; `reason` is the MQTT CONNACK reason code, `client` may be 0.
    struct ConnectFailedRecord {
        bytes16 ip;
        address client;
        uint8 reason;
        uint64 seq;
        uint64 time;
    }

    /// @notice Who published to / received from a sensitive topic in [from, to].
    struct Report {
        bytes32 topicId;
        uint64 seq;
        uint64 from;
        uint64 to;
        address[] publishers;
        address[] receivers;
    }

    struct Topic {
        // slot 0
        address owner;
        bool sensitive;
        uint8 nCountries;
        // bit 0: pubFee != 0, bit 1: subFee != 0 (a free join never reads slot 1)
        uint8 feeSet;
        // slot 1
        uint128 pubFee;
        uint128 subFee;
        // countries, 16 per word, first country in the highest bytes
        mapping(uint256 => bytes32) countryWords;
        // bit 0: publisher, bit 1: subscriber
        mapping(address => uint256) member;
    }

    // ------------------------------------------------------------------ state

    /// @notice The deployer; the only account that can add or remove operators.
    address public immutable admin;

    mapping(bytes32 => Topic) internal _topics;
    /// @dev 0 = never credited, otherwise balance + 1 (sentinel, see contract NatSpec).
    mapping(address => uint256) internal _balances;
    /// @dev bit 255: is operator; low 64 bits: highest audit seq written by this operator.
    mapping(address => uint256) internal _operators;

    uint256 internal constant OP_FLAG = 1 << 255;

    // ------------------------------------------------------------------ events

    /// @notice Every ACL change. `change`: 0 created (target = owner, action = 255), 1 grant,
    ///         2 revoke, 3 join, 4 updated (target = owner, action = 255). `source` is the sender.
    event AclChanged(
        bytes32 indexed topicId,
        address indexed target,
        uint8 indexed action,
        address source,
        uint8 change,
        string reason,
        uint64 timestamp
    );
    /// @notice Emitted once per topic so that names can be recovered from the logs.
    event TopicCreated(bytes32 indexed topicId, address indexed owner, string name);
    /// @notice An operator was added (`enabled`) or removed.
    event OperatorChanged(address indexed operator, bool enabled);
    /// @notice A topic owner withdrew `amount` wei of collected fees.
    event Withdrawn(address indexed owner, uint256 amount);

    /// @notice Audit: `ip` is banned until `until` after `failures` failures.
    event Banned(bytes16 indexed ip, uint64 seq, uint64 until, uint32 failures, uint64 time);
    /// @notice Audit: `client` was refused on `topicId` from `ip` located in `country`.
    event WrongCountry(
        address indexed client, bytes32 indexed topicId, bytes16 ip, bytes2 country, uint64 seq, uint64 time
    );
    /// @notice Audit: a CONNECT from `ip` (by `client`, maybe 0) failed with CONNACK `reason`.
    event ConnectFailed(bytes16 indexed ip, address indexed client, uint8 reason, uint64 seq, uint64 time);
    /// @notice Audit: aggregated report of a sensitive topic over [from, to].
    event SensitiveReport(
        bytes32 indexed topicId, uint64 seq, uint64 from, uint64 to, address[] publishers, address[] receivers
    );

    // ------------------------------------------------------------------ errors

    error TopicExists();
    error UnknownTopic();
    error NotOwner();
    error BadAction();
    error BadCountry(bytes2 country);
    error TooManyCountries();
    error EmptyName();
    error ZeroAddress();
    error AlreadyMember();
    error NotMember();
    error JoinClosed();
    error WrongFee(uint256 expected);
    error NothingToWithdraw();
    error WithdrawFailed();
    error NotAdmin();
    error NotOperator();

    // ------------------------------------------------------------------ setup

    /// @notice The deployer becomes the admin and the first operator.
    constructor() {
        admin = msg.sender;
        _operators[msg.sender] = OP_FLAG;
        emit OperatorChanged(msg.sender, true);
    }

    // ------------------------------------------------------------------ topics

    /// @notice Registers topic `name`; the caller becomes its owner.
    /// @param countries ISO 3166 alpha-2 upper-case codes; empty = open from anywhere.
    /// @param pubFee wei to pay to `join` as publisher (0 = free, JOIN_CLOSED = grant only).
    /// @param subFee wei to pay to `join` as subscriber (same convention).
    /// @return topicId keccak256(bytes(name)).
    function createTopic(
        string calldata name,
        bytes2[] calldata countries,
        uint128 pubFee,
        uint128 subFee,
        bool sensitive,
        string calldata reason
    ) external returns (bytes32 topicId) {
        if (bytes(name).length == 0) revert EmptyName();
        topicId = keccak256(bytes(name));
        Topic storage t = _topics[topicId];
        if (t.owner != address(0)) revert TopicExists();
        t.owner = msg.sender;
        _setTopic(t, countries, pubFee, subFee, sensitive);
        _created(topicId, name);
        _aclChanged(topicId, msg.sender, NO_ACTION, CHANGE_CREATED, reason);
    }

    /// @notice Replaces a topic's countries, fees and sensitive flag. Owner only.
    function updateTopic(
        bytes32 topicId,
        bytes2[] calldata countries,
        uint128 pubFee,
        uint128 subFee,
        bool sensitive,
        string calldata reason
    ) external {
        Topic storage t = _ownedTopic(topicId);
        _setTopic(t, countries, pubFee, subFee, sensitive);
        _aclChanged(topicId, msg.sender, NO_ACTION, CHANGE_UPDATED, reason);
    }

    /// @notice Adds `who` to the publishers (action 0) or subscribers (1) of a topic. Owner only.
    /// @dev Reverts `AlreadyMember()` if `who` already holds that action.
    function grant(bytes32 topicId, address who, uint8 action, string calldata reason) external {
        if (action > SUB) revert BadAction();
        if (who == address(0)) revert ZeroAddress();
        Topic storage t = _ownedTopic(topicId);
        _add(t, who, action);
        _aclChanged(topicId, who, action, CHANGE_GRANT, reason);
    }

    /// @notice `grant` to every address of `who` in one transaction (one AclChanged each), for
    ///         fleets of clients. Owner only; reverts as `grant` would on the first bad address.
    function grantMany(bytes32 topicId, address[] calldata who, uint8 action, string calldata reason) external {
        if (action > SUB) revert BadAction();
        Topic storage t = _ownedTopic(topicId);
        for (uint256 i; i < who.length; ++i) {
            address a = who[i];
            if (a == address(0)) revert ZeroAddress();
            _add(t, a, action);
            _aclChanged(topicId, a, action, CHANGE_GRANT, reason);
        }
    }

    /// @notice Removes `who` from the publishers (0) or subscribers (1) of a topic. Owner only.
    /// @dev Reverts `NotMember()` if `who` does not hold that action. Fees are not refunded.
    function revoke(bytes32 topicId, address who, uint8 action, string calldata reason) external {
        if (action > SUB) revert BadAction();
        Topic storage t = _ownedTopic(topicId);
        _remove(t, who, action);
        _aclChanged(topicId, who, action, CHANGE_REVOKE, reason);
    }

    /// @notice The caller joins a topic as publisher (0) or subscriber (1) by paying its fee,
    ///         which is credited to the topic owner's withdrawable balance.
    /// @dev Reverts `JoinClosed()` if the fee is JOIN_CLOSED, `WrongFee(fee)` unless
    ///      msg.value == fee, `AlreadyMember()` if the caller already holds that action.
    function join(bytes32 topicId, uint8 action) external payable {
        if (action > SUB) revert BadAction();
        Topic storage t = _topics[topicId];
        uint256 s0 = _slot0(t);
        address owner = address(uint160(s0));
        if (owner == address(0)) revert UnknownTopic();
        // a free action needs no read of the fee slot: `feeSet` in slot 0 says it is free
        uint256 fee;
        if ((s0 >> 176) & (1 << action) != 0) fee = action == PUB ? t.pubFee : t.subFee;
        if (fee == JOIN_CLOSED) revert JoinClosed();
        if (msg.value != fee) revert WrongFee(fee);
        _add(t, msg.sender, action);
        if (fee != 0) {
            uint256 raw = _balances[owner];
            // raw is normally >= 1 already (initialised by createTopic/updateTopic)
            _balances[owner] = (raw == 0 ? 1 : raw) + fee;
        }
        _aclChanged(topicId, msg.sender, action, CHANGE_JOIN, string(msg.data[0:0]));
    }

    // ------------------------------------------------------------------ fees

    /// @notice Sends the caller all the fees credited to it (pull payment).
    function withdraw() external {
        uint256 raw = _balances[msg.sender];
        if (raw <= 1) revert NothingToWithdraw();
        uint256 amount = raw - 1;
        _balances[msg.sender] = 1; // effects before the interaction; sentinel keeps the slot warm-cheap
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert WithdrawFailed();
        emit Withdrawn(msg.sender, amount);
    }

    /// @notice Fees credited to `owner` and not yet withdrawn, in wei.
    function balanceOf(address owner) external view returns (uint256) {
        uint256 raw = _balances[owner];
        return raw == 0 ? 0 : raw - 1;
    }

    // ------------------------------------------------------------------ views

    // The views below write their ABI answer by hand (`_writeCountries` + `return` in assembly):
    // the same bytes as Solidity's encoder, for ~1 KB less code (= deploy gas). Tests decode
    // them with viem against the ABI.

    /// @notice May `who` publish to the topic, and from where; unknown topic: all false/empty.
    function verifyPub(bytes32 topicId, address who)
        external
        view
        returns (bool allowed, bytes2[] memory countries, bool sensitive)
    {
        (allowed, countries, sensitive); // named for the ABI; _verify returns them itself
        _verify(topicId, who, PUB);
    }

    /// @notice May `who` subscribe to the topic, and from where; unknown topic: all false/empty.
    function verifySub(bytes32 topicId, address who)
        external
        view
        returns (bool allowed, bytes2[] memory countries, bool sensitive)
    {
        (allowed, countries, sensitive);
        _verify(topicId, who, SUB);
    }

    /// @notice Answers many (topic, address, action) questions in one call. An unknown topic
    ///         gives exists = allowed = sensitive = false and no countries; an action other
    ///         than 0 or 1 gives allowed = false.
    function checkBatch(Query[] calldata queries) external view returns (Answer[] memory) {
        uint256 n = queries.length;
        uint256 p;
        uint256 e;
        assembly ("memory-safe") {
            p := mload(0x40)
            mstore(p, 0x20)
            mstore(add(p, 0x20), n)
            e := add(add(p, 0x40), shl(5, n))
        }
        for (uint256 i; i < n; ++i) {
            Query calldata q = queries[i];
            Topic storage t = _topics[q.topicId];
            uint256 s0 = _slot0(t);
            uint256 action = q.action;
            uint256 allowed = action <= SUB ? (t.member[q.who] >> action) & 1 : 0;
            assembly ("memory-safe") {
                let heads := add(p, 0x40)
                mstore(add(heads, shl(5, i)), sub(e, heads))
                mstore(e, iszero(iszero(s0)))
                mstore(add(e, 0x20), allowed)
                mstore(add(e, 0x40), and(shr(160, s0), 1))
                mstore(add(e, 0x60), 0x80)
            }
            e = _writeCountries(t, s0, e + 0x80);
        }
        assembly ("memory-safe") {
            return(p, sub(e, p))
        }
    }

    /// @notice A topic's metadata; `exists` is false (and the rest zero) for an unknown id.
    ///         The name is not stored: it is in the topic's `TopicCreated` event.
    function topic(bytes32 topicId)
        external
        view
        returns (
            bool exists,
            address owner,
            bytes2[] memory countries,
            uint128 pubFee,
            uint128 subFee,
            bool sensitive
        )
    {
        Topic storage t = _topics[topicId];
        owner = t.owner;
        exists = owner != address(0);
        countries = new bytes2[]((_slot0(t) >> 168) & 0xff);
        uint256 p;
        assembly ("memory-safe") {
            p := countries
        }
        _writeCountries(t, _slot0(t), p);
        pubFee = t.pubFee;
        subFee = t.subFee;
        sensitive = t.sensitive;
    }

    // ------------------------------------------------------------------ operators

    /// @notice Lets `op` write audit records. Admin only.
    function addOperator(address op) external {
        if (msg.sender != admin) revert NotAdmin();
        if (op == address(0)) revert ZeroAddress();
        _operators[op] |= OP_FLAG;
        emit OperatorChanged(op, true);
    }

    /// @notice Stops `op` writing audit records (its `lastSeq` is kept). Admin only.
    function removeOperator(address op) external {
        if (msg.sender != admin) revert NotAdmin();
        _operators[op] &= ~OP_FLAG;
        emit OperatorChanged(op, false);
    }

    /// @notice May `op` write audit records.
    function isOperator(address op) external view returns (bool) {
        return _operators[op] & OP_FLAG != 0;
    }

    /// @notice Highest audit `seq` written by operator `op`; records at or below it are skipped.
    function lastSeq(address op) external view returns (uint64) {
        return uint64(_operators[op]);
    }

    // ------------------------------------------------------------------ audit records

    /// @notice Writes ban records. Operators only; records with seq <= lastSeq are skipped.
    function recordBans(Ban[] calldata bans) external {
        (uint256 state, uint64 last) = _opState();
        _commit(state, last, _bans(bans, last, last));
    }

    /// @notice Writes records of every kind in one transaction. Operators only; every record
    ///         whose seq <= lastSeq (as it was before this call) is skipped.
    function recordAudit(
        Ban[] calldata bans,
        WrongCountryRecord[] calldata wrongCountry,
        ConnectFailedRecord[] calldata connectFailed,
        Report[] calldata reports
    ) external {
        (uint256 state, uint64 last) = _opState();
        uint64 max = _bans(bans, last, last);
        max = _wrongCountry(wrongCountry, last, max);
        max = _connectFailed(connectFailed, last, max);
        max = _sensitive(reports, last, max);
        _commit(state, last, max);
    }

    // ------------------------------------------------------------------ internals

    function _ownedTopic(bytes32 topicId) internal view returns (Topic storage t) {
        t = _topics[topicId];
        address owner = t.owner;
        if (owner == address(0)) revert UnknownTopic();
        if (owner != msg.sender) revert NotOwner();
    }

    function _setTopic(
        Topic storage t,
        bytes2[] calldata countries,
        uint128 pubFee,
        uint128 subFee,
        bool sensitive
    ) internal {
        uint256 n = countries.length;
        if (n > type(uint8).max) revert TooManyCountries();
        bytes32 word;
        for (uint256 i; i < n; ++i) {
            bytes2 c = countries[i];
            uint8 a = uint8(c[0]);
            uint8 b = uint8(c[1]);
            if (a < 0x41 || a > 0x5a || b < 0x41 || b > 0x5a) revert BadCountry(c);
            word |= bytes32(c) >> ((i & 15) << 4);
            if (i & 15 == 15 || i + 1 == n) {
                t.countryWords[i >> 4] = word;
                word = 0;
            }
        }
        t.nCountries = uint8(n);
        t.sensitive = sensitive;
        t.feeSet = (pubFee != 0 ? 1 : 0) | (subFee != 0 ? 2 : 0);
        t.pubFee = pubFee;
        t.subFee = subFee;
        // Initialise the owner's balance sentinel now, so that no joiner pays for it.
        if ((pubFee != 0 && pubFee != JOIN_CLOSED) || (subFee != 0 && subFee != JOIN_CLOSED)) {
            if (_balances[msg.sender] == 0) _balances[msg.sender] = 1;
        }
    }

    function _add(Topic storage t, address who, uint8 action) internal {
        uint256 m = t.member[who];
        uint256 bit = 1 << action;
        if (m & bit != 0) revert AlreadyMember();
        t.member[who] = m | bit;
    }

    function _remove(Topic storage t, address who, uint8 action) internal {
        uint256 m = t.member[who];
        uint256 bit = 1 << action;
        if (m & bit == 0) revert NotMember();
        t.member[who] = m ^ bit;
    }

    /// @dev slot 0 of a topic: owner (bits 0..159), sensitive (160), nCountries (168..175),
    ///      feeSet (176..183); zero iff the topic does not exist.
    function _slot0(Topic storage t) internal view returns (uint256 s0) {
        assembly ("memory-safe") {
            s0 := sload(t.slot)
        }
    }

    /// @dev writes the countries of `t` as ABI `bytes2[]` (length, then one word each) at
    ///      memory `p`; returns the end of what was written.
    function _writeCountries(Topic storage t, uint256 s0, uint256 p) internal view returns (uint256 e) {
        uint256 n = (s0 >> 168) & 0xff;
        assembly ("memory-safe") {
            mstore(p, n)
            e := add(p, 0x20)
            let word := 0
            for { let i := 0 } lt(i, n) { i := add(i, 1) } {
                if iszero(and(i, 15)) {
                    mstore(0, shr(4, i))
                    mstore(0x20, add(t.slot, 2)) // countryWords
                    word := sload(keccak256(0, 0x40))
                }
                mstore(e, and(shl(shl(4, and(i, 15)), word), MB2))
                e := add(e, 0x20)
            }
        }
    }

    /// @dev returns (allowed, countries, sensitive) of verifyPub/verifySub and stops.
    function _verify(bytes32 topicId, address who, uint256 action) internal view {
        Topic storage t = _topics[topicId];
        uint256 s0 = _slot0(t);
        // no member bit can exist on an unknown topic, so `allowed` needs no existence check
        uint256 allowed = (t.member[who] >> action) & 1;
        uint256 p;
        assembly ("memory-safe") {
            p := mload(0x40)
            mstore(p, allowed)
            mstore(add(p, 0x20), 0x60)
            mstore(add(p, 0x40), and(shr(160, s0), 1))
        }
        uint256 e = _writeCountries(t, s0, p + 0x60);
        assembly ("memory-safe") {
            return(p, sub(e, p))
        }
    }

    function _opState() internal view returns (uint256 state, uint64 last) {
        state = _operators[msg.sender];
        if (state & OP_FLAG == 0) revert NotOperator();
        last = uint64(state);
    }

    function _commit(uint256 state, uint64 last, uint64 max) internal {
        if (max != last) _operators[msg.sender] = (state & ~uint256(type(uint64).max)) | max;
    }

    // The four record loops below read the calldata records directly and emit with LOGn:
    // Solidity's generic ABI re-encoder would cost ~2 KB of code (deploy gas) and ~20% more gas
    // per record. Every field is masked to its declared type so that the logs are always
    // canonically encoded, whatever an operator sends. Records at or below `last` are skipped.

    uint256 internal constant M64 = 0xffffffffffffffff;
    uint256 internal constant M160 = 0x00ffffffffffffffffffffffffffffffffffffffff;
    /// @dev keeps the high 16 bytes (bytes16) / the high 2 bytes (bytes2)
    uint256 internal constant MB16 = 0xffffffffffffffffffffffffffffffff00000000000000000000000000000000;
    uint256 internal constant MB2 = 0xffff000000000000000000000000000000000000000000000000000000000000;

    function _bans(Ban[] calldata records, uint64 last, uint64 max) internal returns (uint64) {
        bytes32 sig = Banned.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            for {
                let r := records.offset
                let end := add(r, mul(records.length, 0xa0))
            } lt(r, end) { r := add(r, 0xa0) } {
                let seq := and(calldataload(add(r, 0x20)), M64)
                if gt(seq, last) {
                    mstore(p, seq)
                    mstore(add(p, 0x20), and(calldataload(add(r, 0x40)), M64))
                    mstore(add(p, 0x40), and(calldataload(add(r, 0x60)), 0xffffffff))
                    mstore(add(p, 0x60), and(calldataload(add(r, 0x80)), M64))
                    log2(p, 0x80, sig, and(calldataload(r), MB16))
                    if gt(seq, max) { max := seq }
                }
            }
        }
        return max;
    }

    function _wrongCountry(WrongCountryRecord[] calldata records, uint64 last, uint64 max)
        internal
        returns (uint64)
    {
        bytes32 sig = WrongCountry.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            for {
                let r := records.offset
                let end := add(r, mul(records.length, 0xc0))
            } lt(r, end) { r := add(r, 0xc0) } {
                let seq := and(calldataload(add(r, 0x80)), M64)
                if gt(seq, last) {
                    mstore(p, and(calldataload(add(r, 0x40)), MB16))
                    mstore(add(p, 0x20), and(calldataload(add(r, 0x60)), MB2))
                    mstore(add(p, 0x40), seq)
                    mstore(add(p, 0x60), and(calldataload(add(r, 0xa0)), M64))
                    log3(p, 0x80, sig, and(calldataload(r), M160), calldataload(add(r, 0x20)))
                    if gt(seq, max) { max := seq }
                }
            }
        }
        return max;
    }

    function _connectFailed(ConnectFailedRecord[] calldata records, uint64 last, uint64 max)
        internal
        returns (uint64)
    {
        bytes32 sig = ConnectFailed.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            for {
                let r := records.offset
                let end := add(r, mul(records.length, 0xa0))
            } lt(r, end) { r := add(r, 0xa0) } {
                let seq := and(calldataload(add(r, 0x60)), M64)
                if gt(seq, last) {
                    mstore(p, and(calldataload(add(r, 0x40)), 0xff))
                    mstore(add(p, 0x20), seq)
                    mstore(add(p, 0x40), and(calldataload(add(r, 0x80)), M64))
                    log3(p, 0x60, sig, and(calldataload(r), MB16), and(calldataload(add(r, 0x20)), M160))
                    if gt(seq, max) { max := seq }
                }
            }
        }
        return max;
    }

    function _sensitive(Report[] calldata records, uint64 last, uint64 max) internal returns (uint64) {
        bytes32 sig = SensitiveReport.selector;
        assembly ("memory-safe") {
            // copies the address array whose length word is at calldata `a` to memory `q`
            // (length word first), masking each element; returns the end of what it wrote
            function copyAddrs(a, q) -> e {
                let n := calldataload(a)
                if gt(n, 0xffff) { revert(0, 0) }
                mstore(q, n)
                e := add(q, 0x20)
                for { let end := add(e, shl(5, n)) } lt(e, end) { e := add(e, 0x20) } {
                    a := add(a, 0x20)
                    mstore(e, and(calldataload(a), M160))
                }
            }
            let p := mload(0x40)
            let head := records.offset
            for { let i := 0 } lt(i, records.length) { i := add(i, 1) } {
                let r := add(head, calldataload(add(head, shl(5, i))))
                let seq := and(calldataload(add(r, 0x20)), M64)
                if gt(seq, last) {
                    mstore(p, seq)
                    mstore(add(p, 0x20), and(calldataload(add(r, 0x40)), M64))
                    mstore(add(p, 0x40), and(calldataload(add(r, 0x60)), M64))
                    mstore(add(p, 0x60), 0xa0)
                    let q := copyAddrs(add(r, calldataload(add(r, 0x80))), add(p, 0xa0))
                    mstore(add(p, 0x80), sub(q, p))
                    q := copyAddrs(add(r, calldataload(add(r, 0xa0))), q)
                    log2(p, sub(q, p), sig, calldataload(r))
                    if gt(seq, max) { max := seq }
                }
            }
        }
        return max;
    }

    /// @dev emits TopicCreated(topicId, msg.sender, name) (the name is stored nowhere else)
    function _created(bytes32 topicId, string calldata name) internal {
        bytes32 sig = TopicCreated.selector;
        assembly ("memory-safe") {
            let len := name.length
            let p := mload(0x40)
            let padded := and(add(len, 31), not(31))
            mstore(add(p, add(0x20, padded)), 0)
            mstore(p, 0x20)
            mstore(add(p, 0x20), len)
            calldatacopy(add(p, 0x40), name.offset, len)
            log3(p, add(0x40, padded), sig, topicId, caller())
        }
    }

    /// @dev emits AclChanged (same log as `emit`, ~300 bytes less code per call site)
    function _aclChanged(bytes32 topicId, address target, uint256 action, uint256 change, string calldata reason)
        internal
    {
        bytes32 sig = AclChanged.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            let reasonLen := reason.length
            let padded := and(add(reasonLen, 31), not(31))
            mstore(add(p, add(0x80, padded)), 0) // zero padding of the last word
            mstore(p, caller())
            mstore(add(p, 0x20), change)
            mstore(add(p, 0x40), 0x80)
            mstore(add(p, 0x60), timestamp())
            mstore(add(p, 0x80), reasonLen)
            calldatacopy(add(p, 0xa0), reason.offset, reasonLen)
            log4(p, add(0xa0, padded), sig, topicId, target, action)
        }
    }
}
