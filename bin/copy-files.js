#!/usr/bin/env node
import '../dist/cli/copy-files.js';
