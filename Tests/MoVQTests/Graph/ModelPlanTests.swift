import XCTest
@testable import MoVQ
@testable import MoVQIO

/// The model descriptions: well-formed plans, and the tensor lists, FLOPs
/// and file layouts derived from them.
final class ModelPlanTests: XCTestCase {
    /// Every op reads values that exist by then, and the tensor list is
    /// exactly the weights the ops name.
    func assertWellFormed(_ p: ModelPlan, _ what: String, file: StaticString = #filePath, line: UInt = #line) {
        var defined = Set([p.input]).union(p.state)
        var named = Set<String>()
        for (i, op) in p.ops.enumerated() {
            for v in op.inputs { XCTAssertTrue(defined.contains(v) || op.outputs.contains(v), "\(what): op \(i) reads value \(v) before it is written", file: file, line: line) }
            defined.formUnion(op.outputs)
            switch op {
            case .conv(let w, _, _, _), .upsampleConv(let w, _, _), .downsampleConv(let w, _, _):
                named.insert(w.weightName); if w.hasBias { named.insert(w.biasName) }
            case .modulation(let n, _, _, _): named.formUnion([n.convY!.weightName, n.convY!.biasName, n.convB!.weightName, n.convB!.biasName])
            case .groupNorm(let n, _, _, _, _): named.formUnion([n.gammaName, n.betaName])
            case .attention(let a, _, _, _): for pr in AttentionWeights.projections { named.formUnion([a.weightName(pr), a.biasName(pr)]) }
            case .embed(let e, _): named.formUnion(e.tokenTables + [e.classTable, e.positionTable])
            case .linear(let l, _, _, _): named.formUnion([l.weightName, l.biasName])
            case .layerNorm(let n, _, _): named.insert(n.weightName); if let b = n.biasName { named.insert(b) }
            case .gelu, .selfAttention, .averagePool: break
            }
        }
        for o in p.outputs { XCTAssertTrue(defined.contains(o), "\(what): output \(o) never written", file: file, line: line) }
        XCTAssertEqual(named, Set(p.weights.map(\.name)), "\(what): declared and used weights differ", file: file, line: line)
        XCTAssertEqual(p.weights.count, Set(p.weights.map(\.name)).count, "\(what): a weight is declared twice", file: file, line: line)
    }

    func testAutoencoderPlansAreWellFormed() {
        var plain = MoVQConfig.kandinsky
        plain.normType = .group
        for c in [MoVQConfig.kandinsky, plain, .maskgitTokenizer256] {
            assertWellFormed(AutoencoderPlans.decoder(c, latentHeight: 3, latentWidth: 5), "decoder")
            assertWellFormed(AutoencoderPlans.encoder(c, height: 24, width: 16), "encoder")
        }
    }

    func testTransformerPlansAreWellFormed() {
        var c = PriorConfig(codes: 11, channels: 2, height: 3, width: 2, classes: 4, hidden: 16, heads: 2, layers: 2, mlp: 24)
        assertWellFormed(TransformerPlans.maskGIT(c, sequences: 3), "maskgit post-LN")
        c.normPosition = "pre"; c.norm = "rmsnorm"; c.activation = "geglu"
        assertWellFormed(TransformerPlans.maskGIT(c, sequences: 1), "maskgit pre-RMS-GEGLU")
        c.kind = "gpt"
        assertWellFormed(TransformerPlans.gptStep(c, batch: 2), "gpt step")
    }

    /// The Kandinsky movq's tensor list (the one converted checkpoints are
    /// checked against): 67.8M parameters, encoder first, decoder last.
    func testKandinskyTensorList() {
        let specs = tensorSpecs(for: .kandinsky)
        XCTAssertEqual(specs.reduce(0) { $0 + $1.shape.reduce(1, *) }, 67_832_495)
        XCTAssertEqual(specs.first?.name, "encoder.conv_in.weight")
        XCTAssertEqual(specs.last?.name, "decoder.conv_out.bias")
        // Every decoder norm is an SCN norm: 2 per resnet (4 levels x 3 + 2 mid), 1 per attention (3 + 1 mid), conv_norm_out.
        XCTAssertEqual(specs.filter { $0.name.hasSuffix(".conv_y.weight") }.count, 2 * (4 * 3 + 2) + (3 + 1) + 1)
    }

    /// Model FLOPs from the plan against the closed form for one 3x3 conv layer stack.
    func testDecoderFLOPs() {
        let c = MoVQConfig.kandinsky
        let p = AutoencoderPlans.decoder(c, latentHeight: 32, latentWidth: 32)
        // conv_out alone: 2 * 128 * 3 * 9 * 256^2.
        let last = p.flops(ofOp: p.ops.count - 1)
        XCTAssertEqual(last, 2 * 128 * 3 * 9 * 256 * 256)
        XCTAssertEqual(p.flops, p.ops.indices.reduce(0.0) { $0 + p.flops(ofOp: $1) })
        XCTAssertEqual(p.flops, 472_589_041_664, "the figure `movq bench` reported before the plans")
    }
}
