import { StrictMode } from 'react';
import { createRoot } from 'react-dom/client';
import { App } from './App.js';
import './styles.css';

const root = document.getElementById('root');
// The console has no GatehouseError (it throws the API's ApiError); a page without #root is a broken build.
// eslint-disable-next-line no-restricted-syntax
if (!root) throw new Error('index.html has no #root element');
createRoot(root).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
