module hwqnn_top; endmodule
