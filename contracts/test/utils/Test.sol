// SPDX-License-Identifier: Apache-2.0
pragma solidity ^0.8.24;

/// @title Vm
/// @notice The subset of forge's cheatcodes that the MedLedger tests use. forge answers calls to
///         these functions at the cheatcode address {Test-vm}; the signatures must match forge's.
interface Vm {
    /// @notice One log recorded after {recordLogs}.
    /// @param topics Event topics (topic 0 is the event signature hash).
    /// @param data ABI-encoded non-indexed event fields.
    /// @param emitter Contract that emitted the log.
    struct Log {
        bytes32[] topics;
        bytes data;
        address emitter;
    }

    /// @notice Makes the next call come from `msgSender`.
    /// @param msgSender Address to use as msg.sender.
    function prank(address msgSender) external;

    /// @notice Makes every following call come from `msgSender` until {stopPrank}.
    /// @param msgSender Address to use as msg.sender.
    function startPrank(address msgSender) external;

    /// @notice Ends a {startPrank}.
    function stopPrank() external;

    /// @notice Expects the next call to revert, whatever the revert data.
    function expectRevert() external;

    /// @notice Expects the next call to revert with exactly `revertData`.
    /// @param revertData Expected revert data (e.g. an ABI-encoded custom error).
    function expectRevert(bytes calldata revertData) external;

    /// @notice Expects the next call to revert with data starting with `revertData`.
    /// @param revertData Expected 4-byte selector.
    function expectRevert(bytes4 revertData) external;

    /// @notice Expects the next emitted event to match the one emitted right after this call,
    ///         in every topic and in data, and to come from `emitter`.
    /// @param emitter Address that must emit the event.
    function expectEmit(address emitter) external;

    /// @notice Like {expectEmit}, choosing which parts are compared.
    /// @param checkTopic1 Compare topic 1.
    /// @param checkTopic2 Compare topic 2.
    /// @param checkTopic3 Compare topic 3.
    /// @param checkData Compare the data.
    /// @param emitter Address that must emit the event.
    function expectEmit(bool checkTopic1, bool checkTopic2, bool checkTopic3, bool checkData, address emitter) external;

    /// @notice Starts recording every emitted log.
    function recordLogs() external;

    /// @notice Returns the logs recorded since {recordLogs} or the previous call, and clears them.
    /// @return logs The recorded logs.
    function getRecordedLogs() external returns (Log[] memory logs);

    /// @notice Sets block.number.
    /// @param newHeight New block number.
    function roll(uint256 newHeight) external;

    /// @notice Sets block.timestamp.
    /// @param newTimestamp New timestamp.
    function warp(uint256 newTimestamp) external;

    /// @notice Discards the current fuzz input unless `condition` holds.
    /// @param condition Condition the input must satisfy.
    function assume(bool condition) external pure;

    /// @notice Address of the account with private key `privateKey`.
    /// @param privateKey A secp256k1 private key.
    /// @return keyAddr The derived address.
    function addr(uint256 privateKey) external pure returns (address keyAddr);

    /// @notice Names an address in traces.
    /// @param account Address to name.
    /// @param newLabel The name.
    function label(address account, string calldata newLabel) external;

    /// @notice Decimal representation of `value`.
    /// @param value Number to print.
    /// @return stringifiedValue The text.
    function toString(uint256 value) external pure returns (string memory stringifiedValue);

    /// @notice Checksummed hex representation of `value`.
    /// @param value Address to print.
    /// @return stringifiedValue The text.
    function toString(address value) external pure returns (string memory stringifiedValue);

    /// @notice 0x-prefixed hex representation of `value`.
    /// @param value Word to print.
    /// @return stringifiedValue The text.
    function toString(bytes32 value) external pure returns (string memory stringifiedValue);

    /// @notice "true" or "false".
    /// @param value Flag to print.
    /// @return stringifiedValue The text.
    function toString(bool value) external pure returns (string memory stringifiedValue);

    /// @notice 0x-prefixed hex representation of `value`.
    /// @param value Bytes to print.
    /// @return stringifiedValue The text.
    function toString(bytes calldata value) external pure returns (string memory stringifiedValue);
}

/// @title Test
/// @notice Minimal base for forge tests in this project (the project does not depend on
///         forge-std): the cheatcode handle, assertions that revert with a readable message, and
///         a few fuzzing helpers.
/// @dev forge runs every public function whose name starts with `test` (fuzzing its
///      parameters), after `setUp` if present; a test fails when it reverts. `invariant_*`
///      functions are checked after random call sequences against {targetContracts}.
abstract contract Test {
    /// @notice forge's cheatcodes, at the address derived from "hevm cheat code".
    Vm internal constant vm = Vm(address(uint160(uint256(keccak256("hevm cheat code")))));

    /// @notice Marks this contract as a test contract for forge.
    bool public constant IS_TEST = true;

    /// @dev Contracts the invariant fuzzer calls; empty means every contract set up.
    address[] private _targetContracts;

    /// @notice Contracts the invariant fuzzer calls (read by forge).
    /// @return targetedContracts The registered targets.
    function targetContracts() public view returns (address[] memory targetedContracts) {
        return _targetContracts;
    }

    /// @notice Restricts invariant fuzzing to `target` (may be called several times).
    /// @param target Contract the fuzzer should call.
    function targetContract(address target) internal {
        _targetContracts.push(target);
    }

    /// @notice A deterministic address named `name` in traces.
    /// @param name Name of the account.
    /// @return account The address.
    function makeAddr(string memory name) internal returns (address account) {
        account = vm.addr(uint256(keccak256(bytes(name))));
        vm.label(account, name);
    }

    /// @notice Maps any `x` into the inclusive range [`min`, `max`], keeping small values as is
    ///         where possible so that fuzzing still reaches the edges.
    /// @param x Fuzzed value.
    /// @param min Lower bound.
    /// @param max Upper bound (at least `min`).
    /// @return result A value in [`min`, `max`].
    function bound(uint256 x, uint256 min, uint256 max) internal pure returns (uint256 result) {
        require(min <= max, "bound: min > max");
        if (x >= min && x <= max) return x;
        uint256 span = max - min;
        if (span == type(uint256).max) return x;
        return min + (x % (span + 1));
    }

    /// @notice Fails the test with `message`.
    /// @param message Why the test failed.
    function fail(string memory message) internal pure {
        revert(message);
    }

    /// @notice Fails unless `condition` is true.
    /// @param condition Condition to check.
    /// @param message What was checked.
    function assertTrue(bool condition, string memory message) internal pure {
        if (!condition) fail(string.concat("assertTrue failed: ", message));
    }

    /// @notice Fails unless `condition` is false.
    /// @param condition Condition to check.
    /// @param message What was checked.
    function assertFalse(bool condition, string memory message) internal pure {
        if (condition) fail(string.concat("assertFalse failed: ", message));
    }

    /// @notice Fails unless `a == b`.
    /// @param a Actual value.
    /// @param b Expected value.
    /// @param message What was compared.
    function assertEq(uint256 a, uint256 b, string memory message) internal pure {
        if (a != b) {
            fail(string.concat("assertEq failed: ", message, ": ", vm.toString(a), " != ", vm.toString(b)));
        }
    }

    /// @notice Fails unless `a == b`.
    /// @param a Actual value.
    /// @param b Expected value.
    /// @param message What was compared.
    function assertEq(address a, address b, string memory message) internal pure {
        if (a != b) {
            fail(string.concat("assertEq failed: ", message, ": ", vm.toString(a), " != ", vm.toString(b)));
        }
    }

    /// @notice Fails unless `a == b`.
    /// @param a Actual value.
    /// @param b Expected value.
    /// @param message What was compared.
    function assertEq(bytes32 a, bytes32 b, string memory message) internal pure {
        if (a != b) {
            fail(string.concat("assertEq failed: ", message, ": ", vm.toString(a), " != ", vm.toString(b)));
        }
    }

    /// @notice Fails unless `a == b`.
    /// @param a Actual value.
    /// @param b Expected value.
    /// @param message What was compared.
    function assertEq(bool a, bool b, string memory message) internal pure {
        if (a != b) {
            fail(string.concat("assertEq failed: ", message, ": ", vm.toString(a), " != ", vm.toString(b)));
        }
    }

    /// @notice Fails unless `a == b`.
    /// @param a Actual value.
    /// @param b Expected value.
    /// @param message What was compared.
    function assertEq(bytes memory a, bytes memory b, string memory message) internal pure {
        if (keccak256(a) != keccak256(b)) {
            fail(string.concat("assertEq failed: ", message, ": ", vm.toString(a), " != ", vm.toString(b)));
        }
    }

    /// @notice Fails unless `a > b`.
    /// @param a Actual value.
    /// @param b Value it must exceed.
    /// @param message What was compared.
    function assertGt(uint256 a, uint256 b, string memory message) internal pure {
        if (a <= b) {
            fail(string.concat("assertGt failed: ", message, ": ", vm.toString(a), " <= ", vm.toString(b)));
        }
    }
}
