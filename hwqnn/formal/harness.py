"""The formal harness: the accelerator's top beside the reference (:mod:`hwqnn.formal.reference`)
under an environment that may do anything the AXI-Stream rules allow.

``frames`` input frames are free constants (``anyconst``: the solver picks every pixel); the
source offers their beats in order with ``tlast`` on each frame's last beat, and may pause before
any beat (a free ``gap`` each cycle) but, as the rules require, holds ``tvalid`` and ``tdata``
until the beat is taken; the sink's ``tready`` is free every cycle (back-pressure). The design
starts from its reset state (every register at its reset value). Properties:

- ``equivalence``: output beat ``j`` carries exactly the reference's scores and class of frame
  ``j`` (so also: frames come out in order, one beat each);
- ``protocol``: once ``m_axis_tvalid`` is offered it stays up, with ``tdata`` unchanged, until
  taken; ``tlast`` is 1 on every output beat; no output beat without a whole input frame before
  it (outputs never outnumber completed input frames); ``frame_error`` stays clear, since every
  ``tlast`` is on a frame boundary;
- ``cover``: the last frame's output beat is taken (the depth reaches it; a bounded proof that
  never reaches an output would prove nothing).
"""

from __future__ import annotations

from hwqnn.bundle import Bundle
from hwqnn.formal.reference import WIDTH
from hwqnn.hw.manifest import Manifest
from hwqnn.layers.dense import Layer

PROPERTIES = ("equivalence", "protocol", "cover")


def harness_verilog(b: Bundle, man: Manifest, frames: int = 2) -> str:
    """Module ``hwqnn_formal`` (one clock input) with the properties as ``assert``/``cover``
    statements, each labelled with its property's name."""
    p = man.ports
    k = b.layers[0].in_bits
    raw = b.raw_bits
    chunk_bits = p.in_chunk * raw
    n_in = b.in_features
    beats = p.in_beats
    sw, c = p.score_width, p.classes
    total = frames * beats
    fb = max(1, (frames + 1).bit_length())
    bb = max(1, (total + 1).bit_length())
    v = [
        "`default_nettype none",
        "module hwqnn_formal(input wire clk);",
        f"  (* anyconst *) reg [{frames * n_in * raw - 1}:0] frame;  // frame f at {n_in * raw}*f",
        "  (* anyseq *) reg gap;",
        "  (* anyseq *) reg ready;",
        f"  reg [{bb - 1}:0] beat = 0;  // beats taken so far, over every frame",
        "  reg valid = 0;",
        f"  wire [{bb - 1}:0] bi = beat % {beats};",
        "  // beat bi of frame f: the values past a frame's end in its last beat are the next",
        "  // frame's (or zeros): the design must ignore them, so they are left as they fall",
        f"  wire [{frames * n_in * raw + chunk_bits - 1}:0] padded = "
        f"{{{{{chunk_bits}{{1'b0}}}}, frame}};",
        f"  wire [{chunk_bits - 1}:0] chunk = "
        f"padded >> ({n_in * raw} * (beat / {beats}) + {chunk_bits} * bi);",
        "  wire s_ready, m_valid, m_last, frame_err;",
        f"  wire [{p.m_tdata_bits - 1}:0] m_data;",
        f"  {man.top} dut(.aclk(clk), .aresetn(1'b1),",
        f"    .s_axis_tdata({{{{{p.s_tdata_bits - chunk_bits}{{1'b0}}}}, chunk}}),"
        if p.s_tdata_bits > chunk_bits
        else "    .s_axis_tdata(chunk),",
        f"    .s_axis_tvalid(valid), .s_axis_tready(s_ready), .s_axis_tlast(bi == {beats - 1}),",
        "    .m_axis_tdata(m_data), .m_axis_tvalid(m_valid), .m_axis_tready(ready),",
        "    .m_axis_tlast(m_last), .frame_error(frame_err));",
        "  // the source: a beat offered stays offered until taken; pauses only between beats",
        "  always @(posedge clk) begin",
        "    if (valid && s_ready) begin",
        "      beat <= beat + 1;",
        f"      valid <= (beat + 1 < {total}) && !gap;",
        f"    end else if (!valid) valid <= (beat < {total}) && !gap;",
        "  end",
        f"  reg [{fb - 1}:0] outs = 0;  // output beats taken",
        "  wire take = m_valid && ready;",
        "  always @(posedge clk) if (take) outs <= outs + 1;",
        "  reg waited = 0;  // an output beat was offered last cycle and not taken",
        f"  reg [{p.m_tdata_bits - 1}:0] held = 0;",
        "  always @(posedge clk) begin",
        "    waited <= m_valid && !ready;",
        "    held <= m_data;",
        "  end",
    ]
    first = b.layers[0]
    assert isinstance(first, Layer)
    for f in range(frames):
        # the reference reads codes; without an input rule a raw value is its own code
        assert raw == k, "an input rule has no reference (hwqnn.formal.reference.supported)"
        v.append(f"  wire signed [{WIDTH - 1}:0] " + ", ".join(f"r{f}_s{j}" for j in range(c))
                 + f"; wire [31:0] r{f}_cls;")  # fmt: skip
        ports = ", ".join(f".score{j}(r{f}_s{j})" for j in range(c))
        v.append(f"  hwqnn_ref ref{f}(.codes(frame[{f * n_in * raw} +: {first.in_features * k}]), "
                 f"{ports}, .cls(r{f}_cls));")  # fmt: skip
    v.append("  always @(*) begin")
    for f in range(frames):
        v.append(f"    if (take && outs == {f}) begin")
        for j in range(c):
            field = f"m_data[{sw * j + sw - 1}:{sw * j}]"
            ext = f"{{{{{WIDTH - sw}{{m_data[{sw * j + sw - 1}]}}}}, {field}}}"
            v.append(f"      equivalence_f{f}_score{j}: assert ($signed({ext}) == r{f}_s{j});")
        cls_field = f"m_data[{sw * c + p.class_bits - 1}:{sw * c}]"
        v.append(f"      equivalence_f{f}_class: assert ({cls_field} == r{f}_cls);")
        v.append("    end")
    v += [
        "    if (waited) begin",
        "      protocol_valid_held: assert (m_valid);",
        "      protocol_data_stable: assert (m_data == held);",
        "    end",
        "    if (m_valid) protocol_tlast: assert (m_last);",
        f"    if (take) protocol_no_output_without_frame: assert (outs < beat / {beats});",
        "    protocol_frame_error_clear: assert (!frame_err);",
        f"    if (take && outs == {frames - 1}) cover_last_output: cover (1);",
        "  end",
        "endmodule",
    ]
    return "\n".join(v) + "\n"
