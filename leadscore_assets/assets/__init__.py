"""Asset factories, one module per layer. Each takes a ProjectConfig and returns definitions;
the logic they call lives in `leadscore_assets.lib`."""
