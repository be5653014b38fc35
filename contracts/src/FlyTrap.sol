// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

/// @title FlyTrap — topic ACLs, join fees and the audit trail of an MQTT proxy
/// @notice Topics are keyed by `topicId = keccak256(bytes(name))`, computed off-chain by the
///         proxy; the name itself is emitted only once, at creation (`TopicCreated`).
///         Actions: 0 = publish, 1 = subscribe.
/// @dev Storage layout, chosen for gas (see contracts/GAS.md):
///      - one `Topic` per id: slot 0 packs owner, sensitive flag, country count and both fees
///        as 40-bit codes (read by every write path, so a join reads no other topic slot);
///        countries are packed 16 per 32-byte word;
///      - one word per (topic, address) holds the publish and subscribe bits and the fees that
///        address paid and the owner has not yet withdrawn: all that authorisation needs, and a
///        paid join writes only the slot a join writes anyway. Nothing is listed on chain:
///        members and topics are listed by readers from the `AclChanged` / `TopicCreated`
///        events (flytrap's block index), so an address new to a topic costs one fresh slot;
///      - an operator's flag and its audit high-water mark share one word.
contract FlyTrap {
    // ------------------------------------------------------------------ constants

    /// @notice Action code of publishing.
    uint8 internal constant PUB = 0;
    /// @notice Action code of subscribing.
    uint8 internal constant SUB = 1;
    /// @notice A fee equal to this value closes the action to self-service `join`: only the
    ///         owner's `grant` can add members. A fee of 0 means anyone may join for free.
    uint128 internal constant JOIN_CLOSED = type(uint128).max;

    uint8 internal constant CHANGE_CREATED = 0;
    uint8 internal constant CHANGE_GRANT = 1;
    uint8 internal constant CHANGE_REVOKE = 2;
    uint8 internal constant CHANGE_JOIN = 3;
    uint8 internal constant CHANGE_UPDATED = 4;
    uint8 internal constant NO_ACTION = 255;

    /// @dev A fee is stored as a 40-bit code: mantissa m in bits 0..33, exponent e in bits
    ///      34..39, value m × 10^e. The all-ones code (never a valid uint128 value) is JOIN_CLOSED.
    uint256 internal constant CODE_BITS = 40;
    uint256 internal constant CODE_MASK = (1 << 40) - 1;
    uint256 internal constant CLOSED_CODE = (1 << 40) - 1;
    uint256 internal constant M34 = (1 << 34) - 1;
    /// @dev slot 0 of a topic: owner (bits 0..159), sensitive (160), nCountries (168..175),
    ///      pub fee code (176..215), sub fee code (216..255); zero iff the topic does not exist.
    uint256 internal constant FEES_SHIFT = 176;
    /// @dev a member word: bit 0 publisher, bit 1 subscriber, bits 2.. fees paid, not withdrawn
    uint256 internal constant PAID_SHIFT = 2;
    /// @dev size of one packed `checkBatch` query: topicId (32) ‖ address (20) ‖ action (1)
    uint256 internal constant QUERY_SIZE = 53;

    // ------------------------------------------------------------------ types

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

    struct Topic {
        // owner, sensitive, nCountries, fee codes (see FEES_SHIFT)
        uint256 s0;
        // countries, 16 per word, first country in the highest bytes
        mapping(uint256 => bytes32) countryWords;
        // see PAID_SHIFT
        mapping(address => uint256) member;
    }

    // ------------------------------------------------------------------ state

    /// @notice The deployer; the only account that can enable or disable operators.
    address public immutable admin;

    mapping(bytes32 => Topic) internal _topics;
    /// @dev bit 255: is operator; low 64 bits: highest audit seq written by this operator.
    mapping(address => uint256) internal _operators;

    uint256 internal constant OP_FLAG = 1 << 255;

    // ------------------------------------------------------------------ events

    /// @notice Every ACL change. `change`: 0 created (target = owner, action = 255), 1 grant,
    ///         2 revoke, 3 join, 4 updated (target = owner, action = 255). The sender is not
    ///         logged: it is the topic's owner, except for a join, where it is the target.
    ///         Nor is the time: it is the block's timestamp.
    event AclChanged(bytes32 indexed topicId, address indexed target, uint8 indexed action, uint8 change, string reason);
    /// @notice Emitted once per topic so that names can be recovered from the logs.
    event TopicCreated(bytes32 indexed topicId, address indexed owner, string name);
    /// @notice An operator was enabled or disabled.
    event OperatorChanged(address indexed operator, bool enabled);
    /// @notice A topic's owner withdrew `amount` wei of the fees paid to join it.
    event Withdrawn(bytes32 indexed topicId, address indexed owner, uint256 amount);

    /// @notice Audit: `ip` is banned until `until` after `failures` failures.
    event Banned(bytes16 indexed ip, uint64 seq, uint64 until, uint32 failures, uint64 time);
    /// @notice Audit: `client` was refused on `topicId` from `ip` located in `country`.
    event WrongCountry(
        address indexed client, bytes32 indexed topicId, bytes16 ip, bytes2 country, uint64 seq, uint64 time
    );
    /// @notice Audit: a CONNECT from `ip` (by `client`, maybe 0) failed with CONNACK `reason`.
    event ConnectFailed(bytes16 indexed ip, address indexed client, uint8 reason, uint64 seq, uint64 time);
    /// @notice Audit: aggregated report of a sensitive topic. `report` is packed, big-endian:
    ///         seq (8 bytes) ‖ from (8) ‖ to (8) ‖ nPublishers (2) ‖ nReceivers (2) ‖
    ///         20 bytes per publisher, then 20 bytes per receiver.
    event SensitiveReport(bytes32 indexed topicId, bytes report);

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
    error BadFee();
    error NothingToWithdraw();
    error WithdrawFailed();
    error NotAdmin();
    error NotOperator();
    error BadQuery();
    error BadReport();
    error BadCall();

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
    /// @param pubFee wei to pay to `join` as publisher (0 = free, JOIN_CLOSED = grant only);
    ///        must be m × 10^e with m < 2^34, else `BadFee()`.
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
        if (t.s0 != 0) revert TopicExists();
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
        (Topic storage t,) = _ownedTopic(topicId);
        _setTopic(t, countries, pubFee, subFee, sensitive);
        _aclChanged(topicId, msg.sender, NO_ACTION, CHANGE_UPDATED, reason);
    }

    /// @notice Adds `who` to the publishers (action 0) or subscribers (1) of a topic. Owner only.
    ///         The arguments are packed after the selector, not ABI-encoded (a grant of a new
    ///         address is the most frequent ACL write; packing saves ~0.6 k of calldata and the
    ///         ABI decoder): topicId (32 bytes) ‖ who (20) ‖ action (1) ‖ reason (the rest,
    ///         UTF-8). Fewer than 53 bytes revert `BadCall()`.
    /// @dev Reverts `AlreadyMember()` if `who` already holds that action.
    function grant() external {
        bytes32 sig = AclChanged.selector;
        uint256 topicsSlot;
        assembly ("memory-safe") {
            topicsSlot := _topics.slot
        }
        assembly ("memory-safe") {
            function fail(selector) {
                mstore(0, shl(224, selector))
                revert(0, 4)
            }
            if lt(calldatasize(), 57) { fail(0xcf0e4328) } // BadCall()
            let topicId := calldataload(4)
            let who := shr(96, calldataload(36))
            let action := byte(0, calldataload(56))
            if gt(action, 1) { fail(0x55cfbc4f) } // BadAction()
            if iszero(who) { fail(0xd92e233d) } // ZeroAddress()
            mstore(0, topicId)
            mstore(0x20, topicsSlot)
            let t := keccak256(0, 0x40)
            let s0 := sload(t)
            if iszero(s0) { fail(0x5e811052) } // UnknownTopic()
            if iszero(eq(and(s0, M160), caller())) { fail(0x30cd7471) } // NotOwner()
            mstore(0, who)
            mstore(0x20, add(t, 2)) // member
            let slot := keccak256(0, 0x40)
            let m := sload(slot)
            let bit := shl(action, 1)
            if and(m, bit) { fail(0x810074be) } // AlreadyMember()
            sstore(slot, or(m, bit))
            // AclChanged(topicId, who, action, CHANGE_GRANT, reason = calldata[57:])
            let p := mload(0x40)
            let len := sub(calldatasize(), 57)
            let padded := and(add(len, 31), not(31))
            mstore(add(p, add(0x40, padded)), 0)
            mstore(p, 1) // CHANGE_GRANT
            mstore(add(p, 0x20), 0x40)
            mstore(add(p, 0x40), len)
            calldatacopy(add(p, 0x60), 57, len)
            log4(p, add(0x60, padded), sig, topicId, who, action)
        }
    }

    /// @notice `grant` to every address of `who` in one transaction (one AclChanged each), for
    ///         fleets of clients. Owner only; reverts as `grant` would on the first bad address.
    function grantMany(bytes32 topicId, address[] calldata who, uint8 action, string calldata reason) external {
        if (action > SUB) revert BadAction();
        (Topic storage t,) = _ownedTopic(topicId);
        for (uint256 i; i < who.length; ++i) {
            address a = who[i];
            if (a == address(0)) revert ZeroAddress();
            _add(t, a, action, 0);
            _aclChanged(topicId, a, action, CHANGE_GRANT, reason);
        }
    }

    /// @notice Removes `who` from the publishers (0) or subscribers (1) of a topic. Owner only.
    /// @dev Reverts `NotMember()` if `who` does not hold that action. Fees are not refunded.
    function revoke(bytes32 topicId, address who, uint8 action, string calldata reason) external {
        if (action > SUB) revert BadAction();
        (Topic storage t,) = _ownedTopic(topicId);
        uint256 m = t.member[who];
        uint256 bit = 1 << action;
        if (m & bit == 0) revert NotMember();
        t.member[who] = m ^ bit;
        _aclChanged(topicId, who, action, CHANGE_REVOKE, reason);
    }

    /// @notice The caller joins a topic as publisher (0) or subscriber (1) by paying its fee,
    ///         which the topic's owner collects with `withdraw`.
    /// @dev Reverts `JoinClosed()` if the fee is JOIN_CLOSED, `WrongFee(fee)` unless
    ///      msg.value == fee, `AlreadyMember()` if the caller already holds that action.
    function join(bytes32 topicId, uint8 action) external payable {
        if (action > SUB) revert BadAction();
        Topic storage t = _topics[topicId];
        uint256 s0 = t.s0;
        if (s0 == 0) revert UnknownTopic();
        uint256 code = (s0 >> (FEES_SHIFT + CODE_BITS * action)) & CODE_MASK;
        if (code == CLOSED_CODE) revert JoinClosed();
        uint256 fee = _fee(code);
        if (msg.value != fee) revert WrongFee(fee);
        // the fee is credited in the member's own word, which the join writes anyway
        _add(t, msg.sender, action, fee << PAID_SHIFT);
        _aclChanged(topicId, msg.sender, action, CHANGE_JOIN, string(msg.data[0:0]));
    }

    // ------------------------------------------------------------------ fees

    /// @notice Sends the topic's owner the fees that `members` paid to join it and that were
    ///         not withdrawn yet (pull payment; members come from the topic's join events).
    ///         Owner only; reverts `NothingToWithdraw()` if they add up to zero.
    function withdraw(bytes32 topicId, address[] calldata members) external {
        (Topic storage t,) = _ownedTopic(topicId);
        uint256 amount;
        for (uint256 i; i < members.length; ++i) {
            address a = members[i];
            uint256 m = t.member[a];
            uint256 due = m >> PAID_SHIFT;
            if (due != 0) {
                amount += due;
                t.member[a] = m & 3;
            }
        }
        if (amount == 0) revert NothingToWithdraw();
        // effects before the interaction
        (bool ok,) = msg.sender.call{value: amount}("");
        if (!ok) revert WithdrawFailed();
        emit Withdrawn(topicId, msg.sender, amount);
    }

    /// @notice Fees `who` paid to join the topic that its owner has not withdrawn yet, in wei.
    function paid(bytes32 topicId, address who) external view returns (uint256) {
        return _topics[topicId].member[who] >> PAID_SHIFT;
    }

    // ------------------------------------------------------------------ views

    // The views below write their ABI answer by hand (`_writeCountries` + `return` in assembly):
    // the same bytes as Solidity's encoder, for ~1 KB less code (= deploy gas). Tests decode
    // them with viem against the ABI.

    /// @notice Answers many (topic, address, action) questions in one call. `queries` is packed:
    ///         53 bytes per query, topicId (32) ‖ address (20) ‖ action (1); any other length
    ///         reverts `BadQuery()`. An unknown topic gives exists = allowed = sensitive = false
    ///         and no countries; an action other than 0 or 1 gives allowed = false.
    function checkBatch(bytes calldata queries) external view returns (Answer[] memory) {
        uint256 n = queries.length / QUERY_SIZE;
        if (n * QUERY_SIZE != queries.length) revert BadQuery();
        uint256 p;
        uint256 e;
        assembly ("memory-safe") {
            p := mload(0x40)
            mstore(p, 0x20)
            mstore(add(p, 0x20), n)
            e := add(add(p, 0x40), shl(5, n))
        }
        for (uint256 i; i < n; ++i) {
            bytes32 topicId;
            address who;
            uint256 action;
            assembly ("memory-safe") {
                let q := add(queries.offset, mul(i, QUERY_SIZE))
                topicId := calldataload(q)
                who := shr(96, calldataload(add(q, 0x20)))
                action := byte(0, calldataload(add(q, 0x34)))
            }
            Topic storage t = _topics[topicId];
            uint256 s0 = t.s0;
            uint256 allowed = action <= SUB ? (t.member[who] >> action) & 1 : 0;
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
        (exists, owner, countries, pubFee, subFee, sensitive); // named for the ABI
        Topic storage t = _topics[topicId];
        uint256 s0 = t.s0;
        uint256 pubF = _feeOrClosed(s0 >> FEES_SHIFT);
        uint256 subF = _feeOrClosed(s0 >> (FEES_SHIFT + CODE_BITS));
        uint256 p;
        assembly ("memory-safe") {
            p := mload(0x40)
            mstore(p, iszero(iszero(s0)))
            mstore(add(p, 0x20), and(s0, M160))
            mstore(add(p, 0x40), 0xc0)
            mstore(add(p, 0x60), pubF)
            mstore(add(p, 0x80), subF)
            mstore(add(p, 0xa0), and(shr(160, s0), 1))
        }
        uint256 e = _writeCountries(t, s0, p + 0xc0);
        assembly ("memory-safe") {
            return(p, sub(e, p))
        }
    }

    // ------------------------------------------------------------------ operators

    /// @notice Lets `op` write audit records (`enabled`) or stops it (its `lastSeq` is kept).
    ///         Admin only.
    function setOperator(address op, bool enabled) external {
        if (msg.sender != admin) revert NotAdmin();
        if (op == address(0)) revert ZeroAddress();
        uint256 state = _operators[op];
        _operators[op] = enabled ? state | OP_FLAG : state & ~OP_FLAG;
        emit OperatorChanged(op, enabled);
    }

    /// @notice May `op` write audit records (`enabled`), and the highest audit `seq` it wrote
    ///         (`lastSeq`; its records at or below it are skipped). `lastSeq` survives disabling.
    function operator(address op) external view returns (bool enabled, uint64 lastSeq) {
        uint256 state = _operators[op];
        enabled = state & OP_FLAG != 0;
        lastSeq = uint64(state);
    }

    // ------------------------------------------------------------------ audit records

    /// @notice Writes audit records of every kind in one transaction. Operators only; every
    ///         record whose seq <= lastSeq (as it was before this call) is skipped.
    /// @param reports sensitive-topic reports, packed back to back: topicId (32 bytes) ‖ the
    ///        `SensitiveReport` event's `report` (seq, from, to, counts, addresses); reverts
    ///        `BadReport()` if one is cut short.
    function recordAudit(
        Ban[] calldata bans,
        WrongCountryRecord[] calldata wrongCountry,
        ConnectFailedRecord[] calldata connectFailed,
        bytes calldata reports
    ) external {
        uint256 state = _operators[msg.sender];
        if (state & OP_FLAG == 0) revert NotOperator();
        uint64 last = uint64(state);
        uint64 max = _bans(bans, last, last);
        max = _wrongCountry(wrongCountry, last, max);
        max = _connectFailed(connectFailed, last, max);
        max = _sensitive(reports, last, max);
        if (max != last) _operators[msg.sender] = (state & ~uint256(type(uint64).max)) | max;
    }

    // ------------------------------------------------------------------ internals

    function _ownedTopic(bytes32 topicId) internal view returns (Topic storage t, uint256 s0) {
        t = _topics[topicId];
        s0 = t.s0;
        if (s0 == 0) revert UnknownTopic();
        if (address(uint160(s0)) != msg.sender) revert NotOwner();
    }

    /// @dev writes slot 0 (owner = msg.sender: creation, or an update by the owner) and the
    ///      country words
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
        t.s0 = uint256(uint160(msg.sender)) | (sensitive ? 1 << 160 : 0) | (n << 168)
            | (_code(pubFee) << FEES_SHIFT) | (_code(subFee) << (FEES_SHIFT + CODE_BITS));
    }

    /// @dev the 40-bit code of `fee`; reverts `BadFee()` if it is not m × 10^e, m < 2^34
    function _code(uint256 fee) internal pure returns (uint256) {
        if (fee == JOIN_CLOSED) return CLOSED_CODE;
        uint256 m = fee;
        uint256 e;
        while (m > M34) {
            if (m % 10 != 0) revert BadFee();
            m /= 10;
            ++e;
        }
        return m | (e << 34);
    }

    /// @dev the fee of a code that is not CLOSED_CODE (at most ~2^128: no overflow)
    function _fee(uint256 code) internal pure returns (uint256 fee) {
        assembly ("memory-safe") {
            fee := mul(and(code, M34), exp(10, shr(34, code)))
        }
    }

    /// @dev the fee of the code in the low 40 bits of `x`, JOIN_CLOSED included
    function _feeOrClosed(uint256 x) internal pure returns (uint256) {
        uint256 code = x & CODE_MASK;
        return code == CLOSED_CODE ? JOIN_CLOSED : _fee(code);
    }

    function _add(Topic storage t, address who, uint8 action, uint256 credit) internal {
        uint256 m = t.member[who];
        uint256 bit = 1 << action;
        if (m & bit != 0) revert AlreadyMember();
        t.member[who] = (m | bit) + credit;
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
                    mstore(0x20, add(t.slot, 1)) // countryWords
                    word := sload(keccak256(0, 0x40))
                }
                mstore(e, and(shl(shl(4, and(i, 15)), word), MB2))
                e := add(e, 0x20)
            }
        }
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

    /// @dev each entry of `records`: topicId (32) ‖ seq (8) ‖ from (8) ‖ to (8) ‖ nPub (2) ‖
    ///      nRecv (2) ‖ 20 bytes per address; the event's `report` is the entry minus topicId.
    function _sensitive(bytes calldata records, uint64 last, uint64 max) internal returns (uint64) {
        bytes32 sig = SensitiveReport.selector;
        bytes4 bad = BadReport.selector;
        assembly ("memory-safe") {
            let p := mload(0x40)
            let end := add(records.offset, records.length)
            for { let r := records.offset } lt(r, end) {} {
                // the fixed part: 32 + 28 bytes
                if gt(add(r, 60), end) {
                    mstore(0, bad)
                    revert(0, 4)
                }
                let w := calldataload(add(r, 0x20)) // seq ‖ from ‖ to ‖ nPub ‖ nRecv ‖ 4 more bytes
                let len := add(28, mul(20, add(and(shr(48, w), 0xffff), and(shr(32, w), 0xffff))))
                let next := add(add(r, 32), len)
                if gt(next, end) {
                    mstore(0, bad)
                    revert(0, 4)
                }
                let seq := shr(192, w)
                if gt(seq, last) {
                    mstore(p, 0x20)
                    mstore(add(p, 0x20), len)
                    let padded := and(add(len, 31), not(31))
                    mstore(add(add(p, 0x40), sub(padded, 0x20)), 0) // zero padding of the last word
                    calldatacopy(add(p, 0x40), add(r, 32), len)
                    log2(p, add(0x40, padded), sig, calldataload(r))
                    if gt(seq, max) { max := seq }
                }
                r := next
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
            mstore(add(p, add(0x40, padded)), 0) // zero padding of the last word
            mstore(p, change)
            mstore(add(p, 0x20), 0x40)
            mstore(add(p, 0x40), reasonLen)
            calldatacopy(add(p, 0x60), reason.offset, reasonLen)
            log4(p, add(0x60, padded), sig, topicId, target, action)
        }
    }
}
