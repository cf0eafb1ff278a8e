//! Solidity interfaces of the contracts we call: only the functions we use, declared here so the
//! ABI does not depend on `node_modules` being present at build time. Creation bytecode is
//! separate ([`super::artifacts`]).

use alloy::sol;

sol! {
    #![sol(all_derives)]
    interface IERC20 {
        function name() external view returns (string);
        function symbol() external view returns (string);
        function decimals() external view returns (uint8);
        function totalSupply() external view returns (uint256);
        function balanceOf(address owner) external view returns (uint256);
        function allowance(address owner, address spender) external view returns (uint256);
        function approve(address spender, uint256 value) external returns (bool);
        function transfer(address to, uint256 value) external returns (bool);
        function transferFrom(address from, address to, uint256 value) external returns (bool);
        event Transfer(address indexed from, address indexed to, uint256 value);
    }

    interface DevToken {
        constructor(string name_, string symbol_, uint8 decimals_);
        function mint(address to, uint256 value) external;
        error NotMinter();
        error InsufficientBalance(uint256 have, uint256 need);
        error InsufficientAllowance(uint256 have, uint256 need);
    }

    interface IWETH9 {
        function deposit() external payable;
        function withdraw(uint256 wad) external;
        function balanceOf(address owner) external view returns (uint256);
        event Deposit(address indexed dst, uint256 wad);
        event Withdrawal(address indexed src, uint256 wad);
    }

    interface IUniswapV2Factory {
        function getPair(address tokenA, address tokenB) external view returns (address pair);
        function createPair(address tokenA, address tokenB) external returns (address pair);
        function allPairsLength() external view returns (uint256);
    }

    interface IUniswapV2Pair {
        function token0() external view returns (address);
        function token1() external view returns (address);
        function getReserves() external view returns (uint112 reserve0, uint112 reserve1, uint32 blockTimestampLast);
        event Swap(address indexed sender, uint amount0In, uint amount1In, uint amount0Out, uint amount1Out, address indexed to);
        event Sync(uint112 reserve0, uint112 reserve1);
    }

    interface IUniswapV2Router02 {
        function factory() external view returns (address);
        function WETH() external view returns (address);
        function addLiquidity(address tokenA, address tokenB, uint amountADesired, uint amountBDesired, uint amountAMin, uint amountBMin, address to, uint deadline) external returns (uint amountA, uint amountB, uint liquidity);
        function swapExactTokensForTokens(uint amountIn, uint amountOutMin, address[] calldata path, address to, uint deadline) external returns (uint[] memory amounts);
        function getAmountsOut(uint amountIn, address[] calldata path) external view returns (uint[] memory amounts);
        function getAmountOut(uint amountIn, uint reserveIn, uint reserveOut) external pure returns (uint amountOut);
    }
}

// Gnosis Conditional Tokens (CTF) and the FixedProductMarketMaker (Omen-style binary markets),
// from `@gnosis.pm/conditional-tokens-market-makers@1.8.1` (solc 0.5.10). Outcome tokens are
// ERC-1155 positions held in the ConditionalTokens contract.
sol! {
    #![sol(all_derives)]
    interface IConditionalTokens {
        function prepareCondition(address oracle, bytes32 questionId, uint256 outcomeSlotCount) external;
        function reportPayouts(bytes32 questionId, uint256[] calldata payouts) external;
        function mergePositions(address collateralToken, bytes32 parentCollectionId, bytes32 conditionId, uint256[] calldata partition, uint256 amount) external;
        function redeemPositions(address collateralToken, bytes32 parentCollectionId, bytes32 conditionId, uint256[] calldata indexSets) external;
        function getOutcomeSlotCount(bytes32 conditionId) external view returns (uint256);
        function getConditionId(address oracle, bytes32 questionId, uint256 outcomeSlotCount) external pure returns (bytes32);
        function getCollectionId(bytes32 parentCollectionId, bytes32 conditionId, uint256 indexSet) external view returns (bytes32);
        function getPositionId(address collateralToken, bytes32 collectionId) external pure returns (uint256);
        function payoutNumerators(bytes32 conditionId, uint256 index) external view returns (uint256);
        function payoutDenominator(bytes32 conditionId) external view returns (uint256);
        function balanceOf(address owner, uint256 id) external view returns (uint256);
        function balanceOfBatch(address[] calldata owners, uint256[] calldata ids) external view returns (uint256[] memory);
        function setApprovalForAll(address operator, bool approved) external;
        function isApprovedForAll(address owner, address operator) external view returns (bool);
        event ConditionPreparation(bytes32 indexed conditionId, address indexed oracle, bytes32 indexed questionId, uint256 outcomeSlotCount);
    }

    interface IFixedProductMarketMakerFactory {
        function createFixedProductMarketMaker(address conditionalTokens, address collateralToken, bytes32[] calldata conditionIds, uint256 fee) external returns (address);
        event FixedProductMarketMakerCreation(address indexed creator, address fixedProductMarketMaker, address indexed conditionalTokens, address indexed collateralToken, bytes32[] conditionIds, uint256 fee);
    }

    interface IFixedProductMarketMaker {
        function conditionalTokens() external view returns (address);
        function collateralToken() external view returns (address);
        function conditionIds(uint256 index) external view returns (bytes32);
        function fee() external view returns (uint256);
        function addFunding(uint256 addedFunds, uint256[] calldata distributionHint) external;
        function calcBuyAmount(uint256 investmentAmount, uint256 outcomeIndex) external view returns (uint256);
        function calcSellAmount(uint256 returnAmount, uint256 outcomeIndex) external view returns (uint256);
        function buy(uint256 investmentAmount, uint256 outcomeIndex, uint256 minOutcomeTokensToBuy) external;
        function sell(uint256 returnAmount, uint256 outcomeIndex, uint256 maxOutcomeTokensToSell) external;
    }
}
